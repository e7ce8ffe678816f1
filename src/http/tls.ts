// HTTPS listener (TLS_CERT, TLS_KEY) and client certificates (TLS_CLIENT_CA): the server asks every
// client for a certificate but does not refuse the handshake without one or with a bad one; the
// authentication layer (auth/certificate.ts) decides per request, so a refused certificate gets a
// 401 OperationOutcome rather than a bare TLS alert, and clients with bearer tokens need none.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import type { PeerCertificate, Server as TlsServer, TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';

export function tlsEnabled(config: Config): boolean {
  return config.tlsCert !== undefined;
}

function read(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${name}: cannot read ${file} (${(err as Error).message})`);
  }
}

/** Node https options from the configuration, or undefined when TLS is off. */
export function httpsOptions(config: Config): ServerOptions | undefined {
  if (!config.tlsCert || !config.tlsKey) return undefined;
  const options: ServerOptions = {
    cert: read('TLS_CERT', config.tlsCert),
    key: read('TLS_KEY', config.tlsKey),
    minVersion: 'TLSv1.2',
  };
  if (config.tlsClientCa) {
    options.ca = read('TLS_CLIENT_CA', config.tlsClientCa);
    // With revocation lists, OpenSSL checks the client certificate against its authority's list at
    // the handshake; an authority without a list then fails every certificate it issued (fail closed).
    if (config.tlsClientCrl) options.crl = read('TLS_CLIENT_CRL', config.tlsClientCrl);
    options.requestCert = true;
    // Verified, but decided per request: see the comment above.
    options.rejectUnauthorized = false;
  }
  return options;
}

/**
 * Reloads the TLS context when the TLS_CLIENT_CRL file changes (checked every TLS_CRL_REFRESH_MS),
 * so that a newly revoked certificate is refused without a restart. New handshakes use the new
 * lists; a connection already open keeps the verdict of its handshake until it closes (keep-alive:
 * 72 s idle at most). Returns a function that stops watching.
 */
export function watchRevocationLists(server: TlsServer, config: Config, log: (msg: string) => void): () => void {
  const file = config.tlsClientCrl;
  if (!file) return () => undefined;
  const mtimeOf = () => {
    try {
      return statSync(file).mtimeMs;
    } catch {
      return undefined;
    }
  };
  let seen = mtimeOf();
  const timer = setInterval(() => {
    const now = mtimeOf();
    if (now === undefined || now === seen) return;
    try {
      server.setSecureContext(httpsOptions(config)!);
      seen = now;
      log('TLS_CLIENT_CRL reloaded');
    } catch (err) {
      // A file caught half-written, or unreadable: the lists in force stay, and the next check retries.
      log(`TLS_CLIENT_CRL not reloaded: ${(err as Error).message}`);
    }
  }, config.tlsCrlRefreshMs);
  timer.unref();
  return () => clearInterval(timer);
}

export interface PresentedCertificate {
  certificate: PeerCertificate;
  /** True when the chain verifies against TLS_CLIENT_CA and every certificate is within its validity. */
  authorized: boolean;
  /** OpenSSL's reason when not authorized (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, …). */
  error?: string;
}

/** The client certificate of the request's TLS connection, if the client presented one. */
export function presentedCertificate(request: FastifyRequest): PresentedCertificate | undefined {
  const socket = request.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const certificate = socket.getPeerCertificate(false);
  if (!certificate || Object.keys(certificate).length === 0) return undefined;
  const error = socket.authorizationError;
  return { certificate, authorized: socket.authorized === true, error: error ? String((error as Error).message ?? error) : undefined };
}

/**
 * RFC 8705 §3: a token carrying `cnf["x5t#S256"]` is bound to a client certificate, and is
 * accepted only on a connection that presented that very certificate (its SHA-256 thumbprint,
 * base64url of the DER). The issuer vouched for the certificate, so it need not chain to
 * TLS_CLIENT_CA (self-signed binding, §2.2). Returns a reason to refuse, or undefined.
 */
export function certificateBindingRefusal(claims: Record<string, unknown>, request: FastifyRequest): string | undefined {
  const cnf = claims.cnf;
  if (cnf === undefined) return undefined;
  const bound = typeof cnf === 'object' && cnf !== null ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
  // Another confirmation method (jkt: DPoP) this server cannot check: refused rather than ignored.
  if (typeof bound !== 'string') return 'The token is bound by a confirmation method (cnf) this server does not support; only x5t#S256 (RFC 8705) is';
  const presented = presentedCertificate(request);
  if (!presented) return 'The token is bound to a client certificate (RFC 8705), and this connection presented none';
  const thumbprint = createHash('sha256').update(presented.certificate.raw).digest('base64url');
  if (thumbprint !== bound) return 'The token is bound to another client certificate than the one this connection presented (RFC 8705)';
  return undefined;
}
