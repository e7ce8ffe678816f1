// What the server says about its authorization: /.well-known/smart-configuration (SMART App
// Launch 2.0 §conformance) and the CapabilityStatement's rest.security.
import type { CapabilityStatementRestSecurity } from '@medplum/fhirtypes';
import { DEMO_IDENTITY_GRANT } from './grants.ts';

export interface SmartEndpoints {
  issuer: string;
  tokenEndpoint: string;
  jwksUri: string;
  trustedIssuers: string[];
}

export const SCOPES_SUPPORTED = [
  'system/*.cruds', 'system/*.rs', 'system/*.read', 'system/*.write', 'system/*.*',
  'user/*.cruds', 'user/*.rs', 'user/*.read', 'user/*.write', 'user/*.*',
  'patient/*.cruds', 'patient/*.rs', 'patient/*.read', 'patient/*.write', 'patient/*.*',
];

export function smartConfiguration(e: SmartEndpoints): Record<string, unknown> {
  return {
    issuer: e.issuer,
    jwks_uri: e.jwksUri,
    token_endpoint: e.tokenEndpoint,
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS256', 'ES256'],
    grant_types_supported: ['client_credentials', DEMO_IDENTITY_GRANT],
    scopes_supported: SCOPES_SUPPORTED,
    response_types_supported: [],
    capabilities: ['client-confidential-symmetric', 'client-confidential-asymmetric', 'permission-v1', 'permission-v2', 'permission-patient', 'permission-user'],
    code_challenge_methods_supported: ['S256'],
    // Other issuers whose tokens this server accepts (AUTH_ISSUERS); not a SMART field.
    'x-trusted-issuers': e.trustedIssuers,
  };
}

export function restSecurity(e: SmartEndpoints): CapabilityStatementRestSecurity {
  return {
    cors: false,
    service: [
      {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR', display: 'SMART-on-FHIR' }],
        text: 'OAuth2 bearer tokens (JWT, RS256 or ES256) with SMART App Launch v2 scopes',
      },
    ],
    extension: [
      {
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        extension: [{ url: 'token', valueUri: e.tokenEndpoint }],
      },
    ],
    description:
      `Every interaction but the CapabilityStatement and /.well-known/smart-configuration needs an ` +
      `Authorization: Bearer token from ${[e.issuer, ...e.trustedIssuers].join(', ')}, whose scopes allow the interaction ` +
      `(c r u d s) on the resource type. Professionals, patients and aidants reach only what care-team membership, ` +
      `the habilitation matrix and the patient's objections grant; for them update-as-create is refused (405: ` +
      `create with POST), so that no answer tells a hidden id from a free one. Tokens bound to a client certificate ` +
      `(cnf x5t#S256, RFC 8705) are accepted only with that certificate.`,
  };
}
