// The grant type of the embedded provider that issues tokens for demo identities (provider.ts),
// apart so that scripts/token.ts names it without loading the provider.
export const DEMO_IDENTITY_GRANT = 'urn:fhir-coordination:params:oauth:grant-type:demo-identity';
