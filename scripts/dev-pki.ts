// Generates a demo PKI into DATA_DIR/pki for HTTPS and mutual TLS on a developer's machine:
//   node scripts/dev-pki.ts [--host name-or-ip ...] [--force]
// ca.pem (the demo certification authority, to trust and to give as TLS_CLIENT_CA), crl.pem (its empty
// revocation list, for TLS_CLIENT_CRL), server.pem and
// server-key.pem (localhost, 127.0.0.1 and every --host), and a client certificate per demo
// organisation of fixtures/demo.json (client-<idNatStruct>.pem / -key.pem, OU = its idNatStruct),
// then prints the environment to start the server with and a curl call. Private keys are mode 0600.
// Never for production: there, TLS_CLIENT_CA is the IGC-Santé chain and the server certificate a real one.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { certificateAuthority, organisationCertificate, revocationList, serverCertificate } from './lib/pki.ts';

const { values } = parseArgs({ options: { host: { type: 'string', multiple: true }, force: { type: 'boolean' } }, strict: true });
const dir = resolve(process.env.DATA_DIR || './data', 'pki');
if (existsSync(join(dir, 'ca.pem')) && !values.force) {
  process.stderr.write(`dev-pki: ${dir} already holds a PKI (--force to replace it)\n`);
  process.exit(1);
}
mkdirSync(dir, { recursive: true, mode: 0o700 });
const write = (name: string, text: string, secret = false) => writeFileSync(join(dir, name), text, { mode: secret ? 0o600 : 0o644 });

const ca = certificateAuthority('AC de démonstration (serveur FHIR de coordination)');
write('ca.pem', ca.certPem);
write('ca-key.pem', ca.keyPem, true);
write('crl.pem', revocationList(ca, [])); // the CA's revocation list, empty (TLS_CLIENT_CRL)
const hosts = ['localhost', '127.0.0.1', ...(values.host ?? [])];
const server = serverCertificate(ca, hosts);
write('server.pem', server.certPem + ca.certPem);
write('server-key.pem', server.keyPem, true);

// One client certificate per organisation of the demo data.
const IDNST = 'urn:oid:1.2.250.1.71.4.2.2';
const bundle = JSON.parse(readFileSync(new URL('../fixtures/demo.json', import.meta.url), 'utf8')) as { entry: Array<{ resource: { resourceType: string; name?: string; identifier?: Array<{ system?: string; value?: string }> } }> };
const clients: string[] = [];
for (const { resource } of bundle.entry) {
  if (resource.resourceType !== 'Organization') continue;
  const id = resource.identifier?.find((i) => i.system === IDNST)?.value;
  if (!id) continue;
  const cert = organisationCertificate(ca, { name: resource.name ?? id, idNatStruct: id, cn: `client-${id}.demo` });
  write(`client-${id}.pem`, cert.certPem);
  write(`client-${id}-key.pem`, cert.keyPem, true);
  clients.push(`${id}  ${resource.name ?? ''}`);
}

const rel = (f: string) => join(dir, f);
const first = clients[0]?.split(' ')[0];
process.stdout.write(`Demo PKI written to ${dir}
  ca.pem              the demo CA (trust it: NODE_EXTRA_CA_CERTS, curl --cacert)
  crl.pem             its revocation list, empty for now (TLS_CLIENT_CRL)
  server.pem          server certificate for ${hosts.join(', ')} (with the CA), server-key.pem
  client-*.pem        organisation certificates (OU = idNatStruct):
${clients.map((c) => `                      ${c}`).join('\n')}

Start the server with HTTPS and mutual TLS:
  AUTH=on TLS_CERT=${rel('server.pem')} TLS_KEY=${rel('server-key.pem')} TLS_CLIENT_CA=${rel('ca.pem')} TLS_CLIENT_CRL=${rel('crl.pem')} npm start

Call it as an organisation:
  curl --cacert ${rel('ca.pem')} --cert ${rel(`client-${first}.pem`)} --key ${rel(`client-${first}-key.pem`)} https://127.0.0.1:8080/fhir/Organization
`);
