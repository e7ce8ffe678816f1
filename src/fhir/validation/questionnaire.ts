// What a Questionnaire must satisfy beyond its StructureDefinition (questionnaire.html): an
// enableWhen names a question of the same Questionnaire, and not the item itself or one of its
// descendants (their display depends on the item's own, so the condition would be circular).
import type { OperationOutcomeIssue, Questionnaire, QuestionnaireItem } from '@medplum/fhirtypes';
import { issueAt } from './validator.ts';

export function checkQuestionnaire(q: Questionnaire, path: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const linkIds = new Set<string>();
  const collect = (items: QuestionnaireItem[] | undefined) => {
    for (const item of items ?? []) {
      if (typeof item.linkId === 'string') linkIds.add(item.linkId);
      collect(item.item);
    }
  };
  collect(q.item);
  const inside = (item: QuestionnaireItem, out = new Set<string>()): Set<string> => {
    for (const child of item.item ?? []) {
      if (typeof child.linkId === 'string') out.add(child.linkId);
      inside(child, out);
    }
    return out;
  };
  const check = (items: QuestionnaireItem[] | undefined, at: string) => {
    (items ?? []).forEach((item, i) => {
      const here = `${at}.item[${i}]`;
      const own = inside(item).add(item.linkId);
      (item.enableWhen ?? []).forEach((w, j) => {
        if (typeof w.question !== 'string') return;
        if (!linkIds.has(w.question)) issues.push(issueAt('error', 'invalid', `enableWhen refers to the question '${w.question}', which is not an item of this Questionnaire`, `${here}.enableWhen[${j}].question`));
        else if (own.has(w.question)) issues.push(issueAt('error', 'invalid', `Item '${item.linkId}' cannot be enabled by the answer to '${w.question}', which is the item itself or one of its own items`, `${here}.enableWhen[${j}].question`));
      });
      check(item.item, here);
    });
  };
  check(q.item, path);
  return issues;
}
