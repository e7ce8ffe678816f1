// REQUIRED_PROFILES parsing: types, conditional keys (a system URL in the key), errors.
import t from 'tap';
import { DEFAULT_REQUIRED_PROFILES, parseRequiredProfiles } from '../../src/fhir/validation/enforce.ts';

t.equal(parseRequiredProfiles(undefined), DEFAULT_REQUIRED_PROFILES, 'unset: the defaults');
t.equal(parseRequiredProfiles('default'), DEFAULT_REQUIRED_PROFILES);
t.same(parseRequiredProfiles('none'), {}, 'none: no mandatory profile');
t.same(parseRequiredProfiles('Patient=https://a/p https://a/q|1.0; Slot=https://a/s'), { Patient: ['https://a/p', 'https://a/q|1.0'], Slot: ['https://a/s'] });
t.same(
  parseRequiredProfiles('DocumentReference[type:https://x.org/cs?v=1]=https://a/note'),
  { 'DocumentReference[type:https://x.org/cs?v=1]': ['https://a/note'] },
  "a conditional key, whose system holds an '='",
);
t.ok(Object.keys(DEFAULT_REQUIRED_PROFILES).some((k) => k.startsWith('DocumentReference[type:')), 'the defaults hold the liaison-note rule');
for (const bad of ['Patient', 'patient=https://a/p', 'Patient[type]=https://a/p', 'Patient=']) {
  t.throws(() => parseRequiredProfiles(bad), /REQUIRED_PROFILES: expected/, `refused: ${bad}`);
}
