// The caller's rights as the search engine's AccessFilter: one SQL condition on a `resources`
// row, applied by the engine to the match set, _include/_revinclude, chains, _has and totals, and
// by read, vread, history, $validate and the write path (src/fhir/context.ts: visibility()).
//
// A resource of a patient-compartment type is visible when it belongs to at least one patient
// and every patient it belongs to is one whose data of its category the caller may read; any
// other resource (Practitioner, Organization, conformance…) follows the matrix's outside rule.
// Writes: the same, with the write sets, on the stored version and on the new content.
// Visibility labels (the matrix's visibilityLabels: INVISIBLE_PATIENT, MASQUE_PS…) then hide a
// resource from the kinds of caller they name, whatever the rest grants; a professional still
// sees what they authored. Only rows flagged as labelled (index_mask LABELLED_MASK) are looked up.
import { createHash } from 'node:crypto';
import type { AccessFilter } from '../fhir/context.ts';
import { FhirError, issue } from '../fhir/outcome.ts';
import type { SqlParams } from '../fhir/search/sql.ts';
import { AUDIT_RESOURCE_TYPE } from '../store/audit.ts';
import { LABELLED_MASK } from '../store/resources.ts';
import { matrix, type Category, type Matrix } from './matrix.ts';
import type { AccessRights } from './rights.ts';

export interface CareTeamAccess extends AccessFilter {
  readonly rights: AccessRights;
  /** The patient sets the condition reads from the database (access_sets), by id: to store before use. */
  readonly storedSets: ReadonlyMap<string, readonly string[]>;
}

interface Group {
  types: string[];
  patients: string[];
  /** Set in access_sets holding the patients, when there are more than INLINE_PATIENTS. */
  setId?: string;
}

/** Up to this many patients go into the SQL as a parameter; more are read from a stored set. */
const INLINE_PATIENTS = 64;

const setIdOf = (patients: readonly string[]) => createHash('sha256').update(patients.join('\n')).digest('base64url').slice(0, 32);

/** Categories whose patient sets are equal share one SQL term. */
function groups(sets: Map<Category, Set<string>>, typesByCategory: Map<Category, string[]>): Group[] {
  const byKey = new Map<string, Group>();
  for (const [cat, patients] of sets) {
    const types = typesByCategory.get(cat) ?? [];
    if (!patients.size || !types.length) continue;
    const list = [...patients].sort();
    const key = list.join(',');
    const g = byKey.get(key) ?? { types: [], patients: list, setId: list.length > INLINE_PATIENTS ? setIdOf(list) : undefined };
    g.types.push(...types);
    byKey.set(key, g);
  }
  return [...byKey.values()];
}

// The audit trail, below: a patient and their aidant see the AuditEvents of the patient's
// compartment (who accessed their data) as administrative data; a professional sees only the events
// of their own actions (an agent is their Practitioner or one of their PractitionerRoles), never
// their colleagues' trail, whatever the teams they share.

export function accessFilter(rights: AccessRights, m: Matrix = matrix()): CareTeamAccess {
  const ownAuditOnly = rights.kind === 'professional';
  const typesByCategory = new Map([...m.typesByCategory()].map(([c, types]) => [c, ownAuditOnly ? types.filter((t) => t !== AUDIT_RESOURCE_TYPE) : types]));
  const readGroups = groups(rights.read, typesByCategory);
  const patientTypes = m.patientDataTypes();
  const patientTypeSet = new Set(patientTypes);
  const labels = m.file.visibilityLabels;
  const hiddenLabels = labels.hiddenFrom[rights.kind] ?? [];
  const authorSees = labels.authorSees && rights.authorRefs.length > 0;
  const storedSets = new Map(readGroups.filter((g) => g.setId).map((g) => [g.setId!, g.patients]));
  return {
    rights,
    storedSets,
    condition(alias: string, params: SqlParams, resourceType?: string): string {
      // The lists go in as scalar subqueries: the planner then does not estimate a selectivity
      // element by element (planning a read took 6 ms with the 1,000 patients of a member).
      const list = (values: readonly string[]) => `(SELECT ${params.add(values)}::text[])::text[]`;
      const ofGroup = (g: Group) => {
        // Every patient of the row is one of the group's: a probe of the stored set per compartment.
        // OFFSET 0 keeps the probe a subplan run per compartment (an index lookup): pulled up into
        // an anti-join, it hashed the whole set at every query (0.4 ms of a 0.55 ms search for
        // 1,000 patients) whenever the table holds few sets.
        const within = g.setId
          ? `NOT EXISTS (SELECT 1 FROM unnest(${alias}.compartments) c(p) WHERE NOT EXISTS (SELECT 1 FROM access_sets s WHERE s.set_id = ${params.add(g.setId)} AND s.patient = c.p OFFSET 0))`
          : `${alias}.compartments <@ ${list(g.patients)}`;
        return `${alias}.compartments <> '{}' AND ${within}`;
      };
      // AuditEvents live in the audit store (migrations/027), alias a row of audit_events: an agent
      // is one of the caller's references among the row's indexed terms.
      const ownAudit = () => `${alias}.refs && ${list(rights.authorRefs.map((r) => `agent=${r}`))}`;
      let reachable: string;
      if (resourceType !== undefined) {
        // The row's type is known (the query pins it): only its own rule, a much smaller plan.
        if (ownAuditOnly && resourceType === AUDIT_RESOURCE_TYPE) reachable = rights.authorRefs.length ? ownAudit() : 'false';
        else if (!patientTypeSet.has(resourceType)) reachable = rights.outsideRead ? 'true' : 'false';
        else {
          const g = readGroups.find((x) => x.types.includes(resourceType));
          reachable = g ? `(${ofGroup(g)})` : 'false';
        }
      } else {
        const terms: string[] = [];
        if (rights.outsideRead) terms.push(`NOT (${alias}.resource_type = ANY(${list(patientTypes)}))`);
        for (const g of readGroups) terms.push(`(${alias}.resource_type = ANY(${list(g.types)}) AND ${ofGroup(g)})`);
        reachable = terms.length ? `(${terms.join(' OR ')})` : 'false';
      }
      // The server writes the trail's events without visibility labels (nor has their store a mask).
      if (reachable === 'false' || !hiddenLabels.length || resourceType === AUDIT_RESOURCE_TYPE) return reachable;
      // fhir_label_hides (migration 016) runs only for rows with the labelled bit: AND evaluates left to right.
      const authors = authorSees ? rights.authorRefs : [];
      return `(${reachable} AND NOT (${alias}.index_mask & ${LABELLED_MASK} <> 0 AND fhir_label_hides(${alias}.rid, ${params.add(labels.systems)}::text[], ${params.add(hiddenLabels)}::text[], ${params.add(authors)}::text[])))`;
    },
    admits(resourceType: string, compartments: readonly string[], indexMask: number): boolean | undefined {
      if (hiddenLabels.length && indexMask & LABELLED_MASK) return undefined; // labels: the SQL condition decides
      if (ownAuditOnly && resourceType === AUDIT_RESOURCE_TYPE) return undefined; // its agents: the SQL condition decides
      if (!patientTypeSet.has(resourceType)) return rights.outsideRead;
      const patients = rights.read.get(m.categoryOf(resourceType));
      return compartments.length > 0 && !!patients && compartments.every((p) => patients.has(p));
    },
    checkWrite(resourceType: string, compartments: readonly string[]): void {
      if (!m.isPatientData(resourceType)) {
        if (!rights.outsideWrite) throw refused(`Writing ${resourceType} (data outside any patient record) is reserved to platform clients`);
        return;
      }
      const cat = m.categoryOf(resourceType);
      if (!compartments.length) throw refused(`A ${resourceType} must belong to a patient whose ${cat} data you may write`);
      const allowed = rights.write.get(cat);
      if (!compartments.every((p) => allowed?.has(p))) {
        throw refused(`Your rights (habilitation matrix ${m.version}) do not allow writing ${cat} data (${resourceType}) for this patient`);
      }
    },
  };
}

function refused(text: string): FhirError {
  return new FhirError(403, issue('error', 'forbidden', text));
}
