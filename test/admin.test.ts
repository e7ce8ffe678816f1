// The administration API (src/http/admin.ts, AUTH=on) over real HTTP: only a platform operator
// (system client with system-wide wildcard scopes) may use it; a matrix stored through it changes
// what members may do at their next request; system clients registered through it get tokens by
// private_key_jwt (SMART Backend Services), limited to their registered scopes, and no more once
// removed; an issuer trusted through it is accepted, and refused again once removed.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Client } from 'fhir-kit-client';
import { matrix } from '../src/access/matrix.ts';
import { http, startServer } from './helpers/server.ts';
import { thirdPartyIssuer, tokensFrom } from './helpers/tokens.ts';

const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const now = () => Math.floor(Date.now() / 1000);

const dataset = {
  resourceType: 'Bundle', type: 'transaction',
  entry: [
    { resourceType: 'Organization', id: 'adm-msp', active: true, name: 'MSP' },
    { resourceType: 'Practitioner', id: 'adm-dr', active: true, identifier: [{ system: IDNATPS, value: '899700400001' }], name: [{ family: 'Admin' }] },
    { resourceType: 'PractitionerRole', id: 'adm-role', active: true, practitioner: { reference: 'Practitioner/adm-dr' }, organization: { reference: 'Organization/adm-msp' }, code: [{ coding: [{ system: G15, code: '10' }] }] },
    { resourceType: 'Patient', id: 'adm-pat', name: [{ family: 'Patiente' }] },
    { resourceType: 'CareTeam', id: 'adm-team', status: 'active', subject: { reference: 'Patient/adm-pat' }, participant: [{ member: { reference: 'PractitionerRole/adm-role' } }] },
    { resourceType: 'Observation', id: 'adm-obs', status: 'final', code: { text: 'poids' }, subject: { reference: 'Patient/adm-pat' } },
  ].map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })),
};

t.test('administration API', async (t) => {
  const s = await startServer(t, { AUTH: 'on' });
  const admin = s.url.replace(/\/fhir$/, '/admin');
  const tokens = await tokensFrom(s.url, s.config.dataDir);
  const operator = bearer(await tokens.system());
  t.equal((await http('POST', s.url, dataset, operator)).status, 200);
  const doctor = bearer(await tokens.practitioner('899700400001'));
  const narrow = bearer(await tokens.request({ grant_type: 'client_credentials', scope: 'system/Observation.rs' }));

  t.test('only platform operators', async (t) => {
    const none = await http('GET', `${admin}/habilitations`);
    t.equal(none.status, 401);
    t.equal(none.body.resourceType, 'OperationOutcome');
    t.equal((await http('GET', `${admin}/habilitations`, undefined, doctor)).status, 403, 'a professional');
    t.equal((await http('GET', `${admin}/clients`, undefined, narrow)).status, 403, 'a system client without a wildcard scope');
    t.equal((await http('GET', `${admin}/habilitations`, undefined, operator)).status, 200);
  });

  t.test('the habilitation matrix', async (t) => {
    const current = await http('GET', `${admin}/habilitations`, undefined, operator);
    t.equal(current.body.source, 'file');
    t.same(current.body.matrix, matrix().file);
    const bad = await http('PUT', `${admin}/habilitations`, { ...matrix().file, defaultCategory: 'nowhere' }, { ...operator, 'content-type': 'application/json' });
    t.equal(bad.status, 400, 'a malformed matrix is refused');
    t.match(bad.body.issue[0].details.text, /defaultCategory/);
    t.equal((await http('GET', `${s.url}/Observation/adm-obs`, undefined, doctor)).status, 200, 'the médecin reads medical data');
    const file = structuredClone(matrix().file);
    const medecin = file.roles.find((r) => r.id === 'medecin')!;
    delete medecin.rights.medical;
    file.version = 'test-no-medical';
    const put = await http('PUT', `${admin}/habilitations`, file, { ...operator, 'content-type': 'application/json' });
    t.equal(put.status, 200, put.text);
    t.equal((await http('GET', `${s.url}/Observation/adm-obs`, undefined, doctor)).status, 404, 'stored: he no longer reads medical data, at his next request');
    t.equal((await http('GET', `${s.url}/Patient/adm-pat`, undefined, doctor)).status, 200, 'and keeps the rest');
    t.equal((await http('GET', `${admin}/habilitations`, undefined, operator)).body.matrix.version, 'test-no-medical');
    t.equal((await http('DELETE', `${admin}/habilitations`, undefined, operator)).status, 200);
    t.equal((await http('GET', `${s.url}/Observation/adm-obs`, undefined, doctor)).status, 200, 'back to the shipped file');
  });

  t.test('system clients with private_key_jwt', async (t) => {
    const smart = (await http('GET', `${s.url}/.well-known/smart-configuration`)).body;
    t.ok(smart.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
    t.ok(smart.capabilities.includes('client-confidential-asymmetric'));
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'feed-1', alg: 'ES256', use: 'sig' };
    const register = (body: unknown) => http('POST', `${admin}/clients`, body, { ...operator, 'content-type': 'application/json' });
    const created = await register({ client_id: 'dmp-feed', jwks: { keys: [jwk] }, scope: 'system/Patient.rs system/CarePlan.rs', description: 'DMP feed job' });
    t.equal(created.status, 201, created.text);
    t.equal(created.headers.get('location'), '/admin/clients/dmp-feed');
    t.equal((await register({ client_id: 'dmp-feed', jwks: { keys: [jwk] }, scope: 'system/Patient.rs' })).status, 409, 'an id once');
    const priv = { ...(await exportJWK(privateKey)), kid: 'x' };
    t.equal((await register({ client_id: 'leaky', jwks: { keys: [priv] }, scope: 'system/Patient.rs' })).status, 400, 'a private key is refused');
    t.equal((await register({ client_id: 'wide', jwks: { keys: [jwk] }, scope: 'user/*.cruds' })).status, 400, 'system scopes only');
    t.same((await http('GET', `${admin}/clients`, undefined, operator)).body.clients.map((c: { client_id: string }) => c.client_id), ['dmp-feed']);

    const assertion = () =>
      new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'feed-1' }).setIssuer('dmp-feed').setSubject('dmp-feed').setAudience(smart.token_endpoint).setJti(randomUUID()).setExpirationTime(now() + 120).sign(privateKey);
    const tokenFor = async (scope?: string) => {
      const form = new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion() });
      if (scope) form.set('scope', scope);
      const res = await fetch(smart.token_endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
      return { status: res.status, body: (await res.json()) as { access_token?: string; scope?: string; error?: string } };
    };
    const granted = await tokenFor('system/Patient.rs system/CarePlan.rs');
    t.equal(granted.status, 200, JSON.stringify(granted.body));
    t.equal(granted.body.scope, 'system/Patient.rs system/CarePlan.rs', 'the registered scopes it asks for');
    const feed = new Client({ baseUrl: s.url, customHeaders: bearer(granted.body.access_token!) });
    t.equal(((await feed.read({ resourceType: 'Patient', id: 'adm-pat' })) as unknown as { id: string }).id, 'adm-pat', 'reads what its scopes allow (third-party client)');
    t.equal((await http('GET', `${s.url}/Observation/adm-obs`, undefined, bearer(granted.body.access_token!))).status, 403, 'nothing else');
    t.equal((await tokenFor('system/*.cruds')).status, 400, 'never more than registered');
    t.equal((await tokenFor('system/Patient.rs')).body.scope, 'system/Patient.rs', 'less if asked');
    t.equal((await http('DELETE', `${admin}/clients/dmp-feed`, undefined, operator)).status, 204);
    const after = await tokenFor('system/Patient.rs');
    t.equal(after.status, 401, 'removed: no new token');
    t.equal(after.body.error, 'invalid_client');
    t.equal((await http('DELETE', `${admin}/clients/dmp-feed`, undefined, operator)).status, 404);
  });

  t.test('trusted issuers', async (t) => {
    const third = await thirdPartyIssuer();
    t.teardown(third.close);
    const issuer = third.issuer;
    const token = await new SignJWT({ scope: 'system/Patient.rs', client_id: 'regional' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setIssuer(issuer).setAudience(s.url).setIssuedAt().setExpirationTime(now() + 300).sign(third.rsa.privateKey);
    const read = async () => (await http('GET', `${s.url}/Patient/adm-pat`, undefined, bearer(token))).status;
    t.equal(await read(), 401, 'not trusted yet');
    const put = (issuers: unknown) => http('PUT', `${admin}/issuers`, { issuers }, { ...operator, 'content-type': 'application/json' });
    t.equal((await put(['ftp://example.org'])).status, 400, 'https (or http on loopback) only');
    const added = await put([issuer]);
    t.equal(added.status, 200, added.text);
    t.same(added.body.stored, [issuer]);
    t.equal(await read(), 200, 'trusted once registered');
    t.equal(await read(), 200);
    t.equal((await put([])).status, 200);
    t.equal(await read(), 401, 'refused again once removed, though its token was accepted before');
  });
});
