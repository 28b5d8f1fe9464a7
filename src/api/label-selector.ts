import { z } from 'zod';
import { labelMap, withCel } from './common.ts';

interface Requirement {
  operator: string;
  values?: string[];
}
const IN_OPS = ['In', 'NotIn'];

/** A metav1.LabelSelectorRequirement over the labels of `subject` (e.g. "Runner", "Namespace"). */
export const selectorRequirementSchema = (subject: string) =>
  withCel(
    z
      .object({
        key: z
          .string()
          .min(1)
          .max(317)
          .meta({ description: `The ${subject} label the requirement applies to.` }),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']).meta({
          description:
            'In and NotIn compare the label with values; Exists and DoesNotExist test its presence.',
        }),
        values: z
          .array(z.string().max(63))
          .max(64)
          .optional()
          .meta({ description: 'Non-empty for In and NotIn, empty for Exists and DoesNotExist.' }),
      })
      .meta({ description: 'A label requirement (metav1.LabelSelectorRequirement).' }),
    [
      {
        rule: "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        message: 'values must be non-empty for In and NotIn',
        fieldPath: '.values',
        reason: 'FieldValueRequired',
        holds: (r: Requirement) => !IN_OPS.includes(r.operator) || (r.values ?? []).length > 0,
      },
      {
        rule: "self.operator in ['In', 'NotIn'] || !has(self.values) || size(self.values) == 0",
        message: 'values must be empty for Exists and DoesNotExist',
        fieldPath: '.values',
        reason: 'FieldValueForbidden',
        holds: (r: Requirement) => IN_OPS.includes(r.operator) || (r.values ?? []).length === 0,
      },
    ],
  );

/** A standard LabelSelector (matchLabels, matchExpressions) over the labels of `subject`. */
export const labelSelectorSchema = (subject: string, plural: string) =>
  z
    .object({
      matchLabels: labelMap(`Labels every selected ${subject} must carry.`).optional(),
      matchExpressions: z
        .array(selectorRequirementSchema(subject))
        .max(16)
        .optional()
        .meta({ description: `Requirements every selected ${subject} must meet (all of them).` }),
    })
    .meta({ description: `Selects ${plural} by their labels (a standard LabelSelector).` });
