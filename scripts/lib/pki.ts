// A small X.509 PKI made with node-forge, for the tests and for local demos (scripts/dev-pki.ts):
// a certification authority shaped like the French health PKI's (IGC-Santé), a server certificate
// for localhost / 127.0.0.1, and organisation client certificates whose subject carries the
// structure's national identifier (OU = idNatStruct, as IGC-Santé organisation certificates do; or
// organizationIdentifier = NTRFR-<SIREN>). RSA keys come from node:crypto (forge's are slow in JS).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface Attribute {
  /** A short name (CN, O, OU, C, L) or an OID (2.5.4.97 organizationIdentifier). */
  name: string;
  value: string;
}

export interface Issued {
  cert: forge.pki.Certificate;
  key: forge.pki.PrivateKey;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  subject: Attribute[];
  /** The issuing CA; self-signed when absent. */
  issuer?: Issued;
  kind: 'ca' | 'server' | 'client';
  notBefore?: Date;
  notAfter?: Date;
  /** server: DNS names and IP addresses of the subjectAltName. */
  dnsNames?: string[];
  ips?: string[];
}

const DAY = 86_400_000;

function attributes(list: Attribute[]): forge.pki.CertificateField[] {
  return list.map((a) => {
    const field: forge.pki.CertificateField & { type?: string } = a.name.includes('.') ? { type: a.name } : { shortName: a.name };
    // UTF8String (accents in organisation names; forge encodes it), but countryName is a PrintableString.
    field.value = a.value;
    if (a.name !== 'C') field.valueTagClass = forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;
    return field;
  });
}

export function issueCertificate(opts: IssueOptions): Issued {
  const pair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey);
  // A positive serial of 16 random bytes.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = opts.notBefore ?? new Date(Date.now() - DAY);
  cert.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 365 * DAY);
  const subject = attributes(opts.subject);
  cert.setSubject(subject);
  cert.setIssuer(opts.issuer ? opts.issuer.cert.subject.attributes : subject);
  const extensions: Array<Record<string, unknown>> = [{ name: 'subjectKeyIdentifier' }];
  if (opts.issuer) extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: opts.issuer.cert.generateSubjectKeyIdentifier().getBytes() });
  if (opts.kind === 'ca') {
    extensions.push({ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  } else {
    extensions.push({ name: 'basicConstraints', cA: false, critical: true });
    extensions.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: opts.kind === 'server', critical: true });
    extensions.push(opts.kind === 'server' ? { name: 'extKeyUsage', serverAuth: true } : { name: 'extKeyUsage', clientAuth: true });
    const alt = [...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })), ...(opts.ips ?? []).map((ip) => ({ type: 7, ip }))];
    if (alt.length > 0) extensions.push({ name: 'subjectAltName', altNames: alt });
  }
  cert.setExtensions(extensions);
  const signer = opts.issuer?.key ?? forge.pki.privateKeyFromPem(pair.privateKey);
  cert.sign(signer as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { cert, key: forge.pki.privateKeyFromPem(pair.privateKey), certPem: forge.pki.certificateToPem(cert), keyPem: pair.privateKey };
}

export function certificateAuthority(name: string): Issued {
  return issueCertificate({ kind: 'ca', subject: [{ name: 'C', value: 'FR' }, { name: 'O', value: 'Test IGC-Santé' }, { name: 'OU', value: 'Tests' }, { name: 'CN', value: name }], notAfter: new Date(Date.now() + 10 * 365 * DAY) });
}

export function serverCertificate(ca: Issued, hosts: string[] = ['localhost', '127.0.0.1']): Issued {
  const ips = hosts.filter((h) => /^[0-9.]+$|:/.test(h));
  const dnsNames = hosts.filter((h) => !ips.includes(h));
  return issueCertificate({ kind: 'server', issuer: ca, subject: [{ name: 'C', value: 'FR' }, { name: 'O', value: 'Serveur FHIR de coordination' }, { name: 'CN', value: dnsNames[0] ?? ips[0] }], dnsNames, ips });
}

/** An organisation certificate: OU = the structure's idNatStruct (1+FINESS, 2+SIREN, 3+SIRET), as IGC-Santé issues them. */
export function organisationCertificate(ca: Issued, opts: { name: string; idNatStruct?: string; organizationIdentifier?: string; cn?: string; notBefore?: Date; notAfter?: Date }): Issued {
  const subject: Attribute[] = [{ name: 'C', value: 'FR' }, { name: 'O', value: opts.name }];
  if (opts.idNatStruct) subject.push({ name: 'OU', value: opts.idNatStruct });
  if (opts.organizationIdentifier) subject.push({ name: '2.5.4.97', value: opts.organizationIdentifier });
  subject.push({ name: 'CN', value: opts.cn ?? opts.name });
  return issueCertificate({ kind: 'client', issuer: ca, subject, notBefore: opts.notBefore, notAfter: opts.notAfter });
}

/**
 * A certificate revocation list (X.509 v2 CRL, PEM) signed by the CA, revoking these certificates.
 * node-forge reads and writes certificates but not CRLs: the structure (RFC 5280 §5.1) is built here.
 */
export function revocationList(ca: Issued, revoked: Issued[], opts: { thisUpdate?: Date; nextUpdate?: Date } = {}): string {
  const { asn1 } = forge;
  const U = asn1.Class.UNIVERSAL;
  const T = asn1.Type;
  const thisUpdate = opts.thisUpdate ?? new Date(Date.now() - 60_000);
  const nextUpdate = opts.nextUpdate ?? new Date(Date.now() + 7 * DAY);
  const time = (d: Date) => asn1.create(U, T.UTCTIME, false, asn1.dateToUtcTime(d));
  const algorithm = asn1.create(U, T.SEQUENCE, true, [
    asn1.create(U, T.OID, false, asn1.oidToDer(forge.pki.oids.sha256WithRSAEncryption).getBytes()),
    asn1.create(U, T.NULL, false, ''),
  ]);
  const tbs: forge.asn1.Asn1[] = [
    asn1.create(U, T.INTEGER, false, asn1.integerToDer(1).getBytes()), // v2
    algorithm,
    forge.pki.distinguishedNameToAsn1(ca.cert.subject),
    time(thisUpdate),
    time(nextUpdate),
  ];
  if (revoked.length) {
    tbs.push(asn1.create(U, T.SEQUENCE, true, revoked.map((c) =>
      asn1.create(U, T.SEQUENCE, true, [asn1.create(U, T.INTEGER, false, forge.util.hexToBytes(c.cert.serialNumber)), time(thisUpdate)]))));
  }
  const tbsCertList = asn1.create(U, T.SEQUENCE, true, tbs);
  const md = forge.md.sha256.create();
  md.update(asn1.toDer(tbsCertList).getBytes());
  const signature = (ca.key as forge.pki.rsa.PrivateKey).sign(md);
  const crl = asn1.create(U, T.SEQUENCE, true, [tbsCertList, algorithm, asn1.create(U, T.BITSTRING, false, String.fromCharCode(0) + signature)]);
  return forge.pem.encode({ type: 'X509 CRL', body: asn1.toDer(crl).getBytes() });
}
