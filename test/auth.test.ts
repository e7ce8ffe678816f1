// Authentication (AUTH=on): real tokens from the embedded OpenID provider over real HTTP, tokens
// of a third-party issuer served on loopback (RS256 and ES256, its own discovery and JWKS), the
// checks of issuer, audience, expiry, not-before and signature, SMART scope enforcement, the
// identity mapping, a third-party FHIR client, and `npm run -s token` against a server process.
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Client } from 'fhir-kit-client';
import { createRemoteJWKSet, generateKeyPair, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { limitsOf } from '../src/fhir/context.ts';
import { IdentityResolver } from '../src/http/auth/identity.ts';
import { readCliCredentials } from '../src/http/auth/keys.ts';
import { parseScopes, allows } from '../src/http/auth/scopes.ts';
import { DEMO_IDENTITY_GRANT } from '../src/http/auth/grants.ts';
import { freshDatabase, http, startServer, startServerProcess } from './helpers/server.ts';
import { thirdPartyIssuer } from './helpers/tokens.ts';

const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const RPPS = 'https://rpps.esante.gouv.fr';
const INS = 'urn:oid:1.2.250.1.213.1.4.8';

const now = () => Math.floor(Date.now() / 1000);
const PERMS = ['c', 'r', 'u', 'd', 's'] as const;

t.test('SMART scopes are parsed into what a token may do', async (t) => {
  const s = parseScopes('openid fhirUser patient/*.rs user/Observation.cruds system/Patient.read user/Encounter.write patient/Condition.* patient/*.rcs user/Observation.rs?category=laboratory');
  t.same(s.other, ['openid', 'fhirUser']);
  t.same(s.invalid, ['patient/*.rcs'], 'permissions out of the c r u d s order are refused');
  t.ok(allows(s, 'Patient', 'r', ['patient']) && allows(s, 'Patient', 's', ['patient']), 'patient/*.rs reads and searches any type');
  t.notOk(allows(s, 'Patient', 'c', ['patient']), 'patient/*.rs does not create');
  t.ok(allows(s, 'Observation', 'd', ['user']), 'user/Observation.cruds deletes Observations');
  t.notOk(allows(s, 'Observation', 'd', ['patient']), 'a user/ scope is not a patient/ scope');
  t.ok(allows(s, 'Patient', 's', ['system']) && !allows(s, 'Patient', 'u', ['system']), 'v1 read = r s');
  t.ok(allows(s, 'Encounter', 'u', ['user']) && !allows(s, 'Encounter', 'r', ['user']), 'v1 write = c u d');
  t.ok(PERMS.every((p) => allows(s, 'Condition', p, ['patient'])), 'v1 * = all five');
  const restricted = parseScopes('user/Observation.rs?category=laboratory');
  t.equal(restricted.resources[0].criteria?.get('category'), 'laboratory', 'criteria are kept');
  t.notOk(allows(restricted, 'Observation', 'r', ['user']), 'a scope with criteria grants nothing until they are applied');
  t.same(parseScopes(['system/*.cruds']).resources.length, 1, 'scp arrays are read');
});

t.test('authentication', async (t) => {
  const third = await thirdPartyIssuer();
  t.teardown(third.close);
  // PGlite keeps the provider's keys beside its database; PostgreSQL runs get a DATA_DIR of their own.
  const s = await startServer(t, { AUTH: 'on', AUTH_ISSUERS: `${third.issuer}/` });
  const origin = new URL(s.url).origin;
  const audience = s.url;

  const smart = await http('GET', `${s.url}/.well-known/smart-configuration`);
  const tokenEndpoint: string = smart.body?.token_endpoint;
  const credentials = readCliCredentials(s.config.dataDir)!;
  const basic = 'Basic ' + Buffer.from(`${credentials.clientId}:${credentials.secret}`).toString('base64');
  const tokenRequest = async (form: Record<string, string>, authorization = basic) => {
    const res = await fetch(tokenEndpoint, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
    return { status: res.status, body: (await res.json()) as { access_token?: string; error?: string; error_description?: string; scope?: string; patient?: string } };
  };
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  /** A token of the third-party issuer. */
  const thirdToken = (claims: JWTPayload, opts: { alg?: 'RS256' | 'ES256'; iss?: string; aud?: string; exp?: number; nbf?: number } = {}) => {
    const alg = opts.alg ?? 'RS256';
    const jwt = new SignJWT({ scope: 'system/*.cruds', client_id: 'regional-platform', ...claims })
      .setProtectedHeader({ alg, kid: alg === 'RS256' ? 'rsa-1' : 'ec-1', typ: 'at+jwt' })
      .setIssuer(opts.iss ?? third.issuer)
      .setAudience(opts.aud ?? audience)
      .setIssuedAt()
      .setExpirationTime(opts.exp ?? now() + 300);
    if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
    return jwt.sign(alg === 'RS256' ? third.rsa.privateKey : third.ec.privateKey);
  };

  t.test('public endpoints state the security', async (t) => {
    t.equal(smart.status, 200);
    t.equal(smart.body.issuer, `${origin}/oidc`, 'the issuer is under the server origin');
    t.equal(tokenEndpoint, `${origin}/oidc/token`);
    t.equal(smart.body.jwks_uri, `${origin}/oidc/jwks`);
    t.ok(smart.body.grant_types_supported.includes('client_credentials'));
    t.ok(smart.body.capabilities.includes('permission-v2') && smart.body.capabilities.includes('client-confidential-symmetric'));
    t.ok(smart.body.scopes_supported.includes('system/*.cruds'));
    const cs = await http('GET', `${s.url}/metadata`);
    t.equal(cs.status, 200, 'the CapabilityStatement needs no token');
    const security = cs.body.rest[0].security;
    t.equal(security.service[0].coding[0].code, 'SMART-on-FHIR');
    t.equal(security.service[0].coding[0].system, 'http://terminology.hl7.org/CodeSystem/restful-security-service');
    const uris = security.extension.find((e: { url: string }) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
    t.same(uris.extension, [{ url: 'token', valueUri: tokenEndpoint }]);
    t.ok(cs.body.rest[0].resource.length > 100, 'the rest of the CapabilityStatement is intact');
    const discovery = await http('GET', `${origin}/oidc/.well-known/openid-configuration`);
    t.equal(discovery.body.issuer, `${origin}/oidc`, 'the OpenID provider answers discovery');
  });

  t.test('no token, or not a usable one: 401', async (t) => {
    const none = await http('GET', `${s.url}/Patient`);
    t.equal(none.status, 401);
    t.equal(none.headers.get('www-authenticate'), 'Bearer realm="fhir"', 'no error code without credentials (RFC 6750 §3.1)');
    t.equal(none.body.resourceType, 'OperationOutcome');
    const basicAuth = await http('GET', `${s.url}/Patient`, undefined, { authorization: 'Basic dXNlcjpwYXNz' });
    t.equal(basicAuth.status, 401);
    t.match(basicAuth.headers.get('www-authenticate'), /^Bearer realm="fhir", error="invalid_token", error_description="[^"]+"$/);
    const garbage = await http('GET', `${s.url}/Patient/1`, undefined, bearer('not.a.jwt'));
    t.equal(garbage.status, 401);
    t.match(garbage.body.issue[0].details.text, /well-formed/);
    const system = (await tokenRequest({ grant_type: 'client_credentials', scope: 'system/*.cruds' })).body.access_token!;
    const inUrl = await http('GET', `${s.url}/Patient?access_token=${system}`);
    t.equal(inUrl.status, 401, 'a token in the URL is refused');
    const write = await http('POST', `${s.url}/Patient`, { resourceType: 'Patient' });
    t.equal(write.status, 401, 'writes too');
    const count = await http('GET', `${s.url}/Patient?_summary=count`, undefined, bearer(system));
    t.equal(count.body.total, 0, 'nothing was created without a token');
  });

  let practitionerId = '';
  let patientId = '';
  let relatedId = '';
  let systemToken = '';

  t.test('the embedded provider issues client_credentials tokens for system clients', async (t) => {
    const wrong = await tokenRequest({ grant_type: 'client_credentials', scope: 'system/*.cruds' }, 'Basic ' + Buffer.from(`${credentials.clientId}:nope`).toString('base64'));
    t.equal(wrong.status, 401);
    t.equal(wrong.body.error, 'invalid_client');
    const r = await tokenRequest({ grant_type: 'client_credentials', scope: 'system/*.cruds' });
    t.equal(r.status, 200);
    t.equal(r.body.scope, 'system/*.cruds');
    systemToken = r.body.access_token!;
    // A real JWT access token, verifiable with the provider's published JWKS.
    const { payload, protectedHeader } = await jwtVerify(systemToken, createRemoteJWKSet(new URL(smart.body.jwks_uri)), { issuer: smart.body.issuer, audience });
    t.equal(protectedHeader.alg, 'RS256');
    t.equal(protectedHeader.typ, 'at+jwt');
    t.equal(payload.client_id, credentials.clientId);
    const userScope = await tokenRequest({ grant_type: 'client_credentials', scope: 'user/*.cruds' });
    t.equal(userScope.status, 400, 'a system client gets no user/ scope: the request is refused');
    t.equal(userScope.body.error, 'invalid_scope');

    const practitioner = await http('POST', `${s.url}/Practitioner`, { resourceType: 'Practitioner', identifier: [{ system: IDNATPS, value: '899700100128' }, { system: RPPS, value: '99700100128' }], name: [{ family: 'Médecin' }] }, bearer(systemToken));
    t.equal(practitioner.status, 201, 'a system token writes');
    practitionerId = practitioner.body.id;
    const rppsOnly = await http('POST', `${s.url}/Practitioner`, { resourceType: 'Practitioner', identifier: [{ system: RPPS, value: '99700100367' }] }, bearer(systemToken));
    t.equal(rppsOnly.status, 201);
    const patient = await http('POST', `${s.url}/Patient`, { resourceType: 'Patient', identifier: [{ system: INS, value: '238043306308784' }], name: [{ family: 'Lefèvre' }] }, bearer(systemToken));
    t.equal(patient.status, 201);
    patientId = patient.body.id;
    const related = await http('POST', `${s.url}/RelatedPerson`, { resourceType: 'RelatedPerson', patient: { reference: `Patient/${patientId}` } }, bearer(systemToken));
    t.equal(related.status, 201);
    relatedId = related.body.id;
    const obs = await http('POST', `${s.url}/Observation`, { resourceType: 'Observation', status: 'final', code: { text: 'poids' }, subject: { reference: `Patient/${patientId}` } }, bearer(systemToken));
    t.equal(obs.status, 201);
    // The professional is in the patient's care team (care-team rights, test/access.test.ts).
    const team = await http('POST', `${s.url}/CareTeam`, { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${patientId}` }, participant: [{ member: { reference: `Practitioner/${practitionerId}` } }] }, bearer(systemToken));
    t.equal(team.status, 201);
  });

  t.test('tokens for demo identities that exist, refused for those that do not', async (t) => {
    const pro = await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'practitioner', identity: '899700100128' });
    t.equal(pro.status, 200);
    const claims = JSON.parse(Buffer.from(pro.body.access_token!.split('.')[1], 'base64url').toString());
    t.equal(claims.idNatPs, '899700100128');
    t.equal(claims.fhirUser, `${s.url}/Practitioner/${practitionerId}`);
    t.equal(claims.scope, 'user/*.cruds');
    const read = await http('GET', `${s.url}/Patient/${patientId}`, undefined, bearer(pro.body.access_token!));
    t.equal(read.status, 200, 'the professional reads with their token');
    const unknown = await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'practitioner', identity: '899700199999' });
    t.equal(unknown.status, 400);
    t.equal(unknown.body.error, 'invalid_grant');
    t.match(unknown.body.error_description, /No Practitioner on this server has the national identifier \(idNatPs\) 899700199999/);
    const pat = await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'patient', identity: '238043306308784' });
    t.equal(pat.status, 200);
    t.equal(pat.body.patient, patientId, 'the patient in context is in the token response');
    t.equal(pat.body.scope, 'patient/*.rs');
    const patRead = await http('GET', `${s.url}/Observation?subject=Patient/${patientId}`, undefined, bearer(pat.body.access_token!));
    t.equal(patRead.status, 200);
    const patWrite = await http('POST', `${s.url}/Observation`, { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, bearer(pat.body.access_token!));
    t.equal(patWrite.status, 403, 'patient/*.rs does not write');
    const rel = await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'related-person', identity: relatedId });
    t.equal(rel.status, 200);
    t.equal(rel.body.patient, patientId, "an aidant's token carries the patient they help");
    const noRel = await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'related-person', identity: 'nobody' });
    t.equal(noRel.body.error, 'invalid_grant');
    const systemScope = await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'practitioner', identity: '899700100128', scope: 'system/*.cruds' });
    t.equal(systemScope.body.error, 'invalid_scope', 'a person never gets system/ scopes');
  });

  t.test('claims map to identities stored on the server', async (t) => {
    const resolver = new IdentityResolver(s.db, limitsOf(s.config));
    t.same(await resolver.resolve({ idNatPs: '899700100128' }, s.url), { kind: 'practitioner', idNatPs: '899700100128', practitioner: `Practitioner/${practitionerId}` });
    const rpps = await resolver.resolve({ idNatPs: '899700100367' }, s.url);
    t.equal(rpps.kind === 'practitioner' && rpps.practitioner.startsWith('Practitioner/'), true, 'the 8+RPPS form finds a Practitioner known by its RPPS number');
    t.same(await resolver.resolve({ ins: '238043306308784' }, s.url), { kind: 'patient', ins: '238043306308784', patient: `Patient/${patientId}` });
    t.same(await resolver.resolve({ related_person: relatedId }, s.url), { kind: 'related-person', relatedPerson: `RelatedPerson/${relatedId}`, patient: `Patient/${patientId}` });
    t.same(await resolver.resolve({ fhirUser: `${s.url}/Patient/${patientId}` }, s.url), { kind: 'patient', patient: `Patient/${patientId}` });
    t.same(await resolver.resolve({ client_id: 'dmp-feed', sub: 'x' }, s.url), { kind: 'system', clientId: 'dmp-feed' });
    await t.rejects(resolver.resolve({ idNatPs: '899700100999' }, s.url), { name: 'Error', message: /No Practitioner on this server/, status: 403 } as unknown as Error, 'an unknown professional is refused');
    await t.rejects(resolver.resolve({ ins: '100000000000000' }, s.url), { message: /No Patient on this server/, status: 403 } as unknown as Error, 'an unknown patient is refused');
    // Over HTTP: a third-party token for a professional the server does not know.
    const res = await http('GET', `${s.url}/Patient`, undefined, bearer(await thirdToken({ idNatPs: '899700100999', scope: 'user/*.rs' })));
    t.equal(res.status, 403);
    t.match(res.body.issue[0].details.text, /No Practitioner on this server has the national identifier/);
    const known = await http('GET', `${s.url}/Patient`, undefined, bearer(await thirdToken({ idNatPs: '899700100367', scope: 'user/*.rs' })));
    t.equal(known.status, 200, 'a third-party token of a known professional (by RPPS) is accepted');
  });

  t.test('a third-party FHIR client sends the bearer token', async (t) => {
    const client = new Client({ baseUrl: s.url, bearerToken: systemToken });
    const patient = (await client.read({ resourceType: 'Patient', id: patientId })) as unknown as { id: string };
    t.equal(patient.id, patientId);
    const bundle = (await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${patientId}` } })) as unknown as { total: number };
    t.equal(bundle.total, 1);
    const anonymous = new Client({ baseUrl: s.url });
    await t.rejects(anonymous.read({ resourceType: 'Patient', id: patientId }), { response: { status: 401 } } as unknown as Error, 'fhir-kit-client without a token gets 401');
  });

  t.test('third-party tokens: RS256 and ES256, issuer, audience, expiry, not-before, signature', async (t) => {
    const get = (token: string) => http('GET', `${s.url}/Patient?_summary=count`, undefined, bearer(token));
    const rs = await get(await thirdToken({}));
    t.equal(rs.status, 200, 'RS256 token of a trusted issuer');
    const es = await get(await thirdToken({}, { alg: 'ES256' }));
    t.equal(es.status, 200, 'ES256 token of a trusted issuer');
    t.ok(third.fetches() >= 1, 'the issuer JWKS was fetched');
    const refused = async (token: string, reason: RegExp, what: string) => {
      const r = await get(token);
      t.equal(r.status, 401, what);
      t.match(r.headers.get('www-authenticate'), /error="invalid_token"/, `${what}: challenge`);
      t.match(r.body?.issue?.[0]?.details?.text, reason, `${what}: reason`);
      t.notOk(r.text.includes(token.split('.')[1]) || (r.headers.get('www-authenticate') ?? '').includes(token.split('.')[1]), `${what}: the answer does not quote the token`);
    };
    await refused(await thirdToken({}, { exp: now() - 120 }), /expired/, 'expired');
    const skew = await get(await thirdToken({}, { exp: now() - 5 }));
    t.equal(skew.status, 200, 'a token expired 5 s ago passes within the clock skew');
    // Verified tokens are remembered (verify.ts), but never beyond their expiry.
    const ending = await thirdToken({}, { exp: now() - 24 }); // accepted for about 6 s more
    t.equal((await get(ending)).status, 200, 'accepted within the clock skew');
    t.equal((await get(ending)).status, 200, 'again (remembered)');
    await new Promise((r) => setTimeout(r, 7000));
    await refused(ending, /expired/, 'the same token once its expiry and the skew have passed');
    await refused(await thirdToken({}, { nbf: now() + 300 }), /not valid yet/, 'not before');
    await refused(await thirdToken({}, { aud: 'https://other.example/fhir' }), /audience/, 'wrong audience');
    await refused(await thirdToken({}, { iss: 'http://127.0.0.1:9/evil' }), /does not trust/, 'untrusted issuer');
    // Signed by a key of nobody's, claiming the trusted issuer and its kid.
    const rogue = await generateKeyPair('RS256');
    const forged = await new SignJWT({ scope: 'system/*.cruds' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setIssuer(third.issuer).setAudience(audience).setExpirationTime(now() + 60).sign(rogue.privateKey);
    await refused(forged, /signature is invalid/, 'signed with another key');
    // A valid token whose payload is changed after signing (wider scope).
    const good = await thirdToken({ scope: 'system/Observation.rs' });
    const [h, p, sig] = good.split('.');
    const widened = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'system/*.cruds' })).toString('base64url');
    await refused(`${h}.${widened}.${sig}`, /signature is invalid/, 'tampered payload');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${p}.`;
    await refused(none, /algorithm/, 'alg none');
    const hs = await new SignJWT({ scope: 'system/*.cruds' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(third.issuer).setAudience(audience).setExpirationTime(now() + 60).sign(new TextEncoder().encode('0123456789abcdef0123456789abcdef'));
    await refused(hs, /algorithm/, 'HS256');
    const noExp = await new SignJWT({ scope: 'system/*.cruds' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setIssuer(third.issuer).setAudience(audience).sign(third.rsa.privateKey);
    await refused(noExp, /expiry/, 'no exp');
  });

  t.test('scopes must allow the interaction and the resource type: 403 otherwise', async (t) => {
    const obsOnly = await thirdToken({ scope: 'system/Observation.rs' }, { alg: 'ES256' });
    const ok = await http('GET', `${s.url}/Observation`, undefined, bearer(obsOnly));
    t.equal(ok.status, 200, 'search Observation with system/Observation.rs');
    const expectRefused = (r: Awaited<ReturnType<typeof http>>, what: RegExp, scope: string) => {
      t.equal(r.status, 403);
      t.equal(r.body.resourceType, 'OperationOutcome');
      t.equal(r.body.issue[0].code, 'forbidden');
      t.match(r.body.issue[0].details.text, what);
      t.match(r.headers.get('www-authenticate'), new RegExp(`error="insufficient_scope".*scope="${scope.replace(/[.*]/g, '\\$&')}"`));
    };
    expectRefused(await http('POST', `${s.url}/Observation`, { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, bearer(obsOnly)), /create Observation/, 'system/Observation.c');
    expectRefused(await http('GET', `${s.url}/Patient/${patientId}`, undefined, bearer(obsOnly)), /read Patient/, 'system/Patient.r');
    expectRefused(await http('GET', `${s.url}`, undefined, bearer(obsOnly)), /search \*/, 'system/*.s');
    expectRefused(await http('GET', `${s.url}/Patient/${patientId}/Observation`, undefined, bearer(await thirdToken({ scope: 'system/Patient.rs' }))), /search Observation/, 'system/Observation.s');
    const tx = await http('POST', s.url, { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: 'Observation' } }, { resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } }] }, bearer(obsOnly));
    expectRefused(tx, /Bundle\.entry\[1\]: create Patient/, 'system/Patient.c');
    const countPatients = await http('GET', `${s.url}/Patient?_summary=count`, undefined, bearer(systemToken));
    t.equal(countPatients.body.total, 1, 'the refused transaction created nothing');
    const readTx = await http('POST', s.url, { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Observation' } }] }, bearer(obsOnly));
    t.equal(readTx.status, 200, 'a batch within the scopes runs');
    const v1 = await thirdToken({ scope: 'system/*.read' });
    t.equal((await http('GET', `${s.url}/Patient`, undefined, bearer(v1))).status, 200, 'v1 system/*.read searches');
    t.equal((await http('DELETE', `${s.url}/Patient/${patientId}`, undefined, bearer(v1))).status, 403, 'v1 system/*.read does not delete');
    const condUpdate = await http('PUT', `${s.url}/Observation?code=x`, { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, bearer(await thirdToken({ scope: 'system/Observation.u' })));
    expectRefused(condUpdate, /conditional update Observation/, 'system/Observation.s');
    const criteria = await http('GET', `${s.url}/Observation`, undefined, bearer(await thirdToken({ scope: 'system/Observation.rs?category=laboratory' })));
    t.equal(criteria.status, 403, 'finer-grained scopes grant nothing yet');
    const userScopeForSystem = await http('GET', `${s.url}/Observation`, undefined, bearer(await thirdToken({ scope: 'user/*.cruds' })));
    t.equal(userScopeForSystem.status, 403, 'a system client cannot use user/ scopes');
    const pro = (await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'practitioner', identity: '899700100128' })).body.access_token!;
    const reindex = await http('POST', `${s.url}/Observation/$reindex`, { resourceType: 'Parameters' }, bearer(pro));
    t.equal(reindex.status, 403, '$reindex is for system clients only');
    const proScoped = (await tokenRequest({ grant_type: DEMO_IDENTITY_GRANT, identity_type: 'practitioner', identity: '899700100128', scope: 'user/Observation.rs' })).body.access_token!;
    t.equal((await http('GET', `${s.url}/Observation`, undefined, bearer(proScoped))).status, 200, 'a narrower requested scope is honoured');
    t.equal((await http('GET', `${s.url}/Patient`, undefined, bearer(proScoped))).status, 403);
  });
});

t.test('npm run -s token against a server process', async (t) => {
  const fresh = await freshDatabase();
  t.teardown(fresh.cleanup);
  const proc = await startServerProcess(fresh.env, { AUTH: 'on' });
  t.teardown(async () => {
    proc.child.kill('SIGTERM');
    await proc.exited;
  });
  const port = new URL(proc.url).port;
  const token = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('npm', ['run', '-s', 'token', '--', ...args], { env: { ...process.env, ...fresh.env, PORT: port, HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  const lastLine = (out: string) => out.trimEnd().split('\n').pop() ?? '';
  const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

  const system = await token('--system');
  t.equal(system.code, 0, system.stderr);
  t.match(lastLine(system.stdout), JWT, 'the last line is the token and nothing else');
  const sys = { authorization: `Bearer ${lastLine(system.stdout)}` };
  const created = await http('POST', `${proc.url}/Practitioner`, { resourceType: 'Practitioner', identifier: [{ system: IDNATPS, value: '899700100243' }] }, sys);
  t.equal(created.status, 201, 'the system token writes');
  const patient = await http('POST', `${proc.url}/Patient`, { resourceType: 'Patient', identifier: [{ system: INS, value: '146112432215420' }] }, sys);
  t.equal(patient.status, 201);
  const related = await http('POST', `${proc.url}/RelatedPerson`, { resourceType: 'RelatedPerson', patient: { reference: `Patient/${patient.body.id}` } }, sys);
  // The professional is in the patient's care team (care-team rights, test/access.test.ts).
  const team = await http('POST', `${proc.url}/CareTeam`, { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${patient.body.id}` }, participant: [{ member: { reference: `Practitioner/${created.body.id}` } }] }, sys);
  t.equal(team.status, 201);

  const pro = await token('--practitioner', '899700100243');
  t.equal(pro.code, 0, pro.stderr);
  const read = await http('GET', `${proc.url}/Patient/${patient.body.id}`, undefined, { authorization: `Bearer ${lastLine(pro.stdout)}` });
  t.equal(read.status, 200, "the professional's token reads");
  const pat = await token('--patient', '146112432215420');
  t.equal(pat.code, 0, pat.stderr);
  t.match(lastLine(pat.stdout), JWT);
  const rel = await token('--related-person', related.body.id);
  t.equal(rel.code, 0, rel.stderr);
  t.match(lastLine(rel.stdout), JWT);

  const unknown = await token('--practitioner', '899700199999');
  t.equal(unknown.code, 1, 'an identity the server does not have fails');
  t.match(unknown.stderr, /No Practitioner on this server has the national identifier \(idNatPs\) 899700199999/);
  t.notMatch(unknown.stdout, JWT);
  const unknownPatient = await token('--patient', '100000000000000');
  t.equal(unknownPatient.code, 1);
  t.match(unknownPatient.stderr, /No Patient on this server has the INS 100000000000000/);
  const both = await token('--system', '--patient', '1');
  t.equal(both.code, 1);
  t.match(both.stderr, /exactly one/);
  const wrongDir = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn('npm', ['run', '-s', 'token', '--', '--system'], { env: { ...process.env, DATA_DIR: join(tmpdir(), 'no-such-dir'), PORT: port }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  t.equal(wrongDir.code, 1);
  t.match(wrongDir.stderr, /no client credentials/);
});
