import { z } from 'zod';
import { API_GROUP, API_VERSION } from './common.ts';
import { agentWorkloadSpecSchema, agentWorkloadStatusSchema } from './agentworkload.ts';
import { runnerSpecSchema, runnerStatusSchema } from './runner.ts';
import {
  AGENT_WORKLOAD_DESCRIPTIONS,
  RUNNER_DESCRIPTIONS,
  describeSchema,
} from './descriptions.ts';

type JsonSchema = { [key: string]: unknown };

/** Reduces zod's OpenAPI 3.0 output to a Kubernetes structural schema. */
export function toStructural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toStructural);
  if (!node || typeof node !== 'object') return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node as JsonSchema)) {
    if (key === '$schema' || key === 'propertyNames' || key === 'id') continue;
    if (key === 'additionalProperties' && value === false) continue;
    if (
      (key === 'minimum' || key === 'maximum') &&
      Math.abs(value as number) >= Number.MAX_SAFE_INTEGER
    )
      continue;
    if (key === 'properties' || key === 'x-kubernetes-validations') {
      out[key] =
        key === 'properties'
          ? Object.fromEntries(
              Object.entries(value as JsonSchema).map(([k, v]) => [k, toStructural(v)]),
            )
          : value;
      continue;
    }
    out[key] = toStructural(value);
  }
  if (out.type === 'integer' && out.format === undefined) out.format = 'int64';
  if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
  return out;
}

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  return toStructural(
    z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'throw' }),
  ) as JsonSchema;
}

interface CrdDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  spec: z.ZodType;
  status: z.ZodType;
  description: string;
  /** Descriptions of schema nodes the zod schemas leave without one (descriptions.ts). */
  descriptions: Record<string, string>;
  columns: Array<{
    name: string;
    type: string;
    jsonPath: string;
    description?: string;
    priority?: number;
  }>;
}

/**
 * An object the controller has not written yet reads `status: {observedGeneration: 0}` (the
 * API server applies schema defaults on every read), so kstatus (Flux) computes InProgress,
 * "generation 1, observed 0", instead of the Current it gives an object with no status.
 */
function unobservedByDefault(status: JsonSchema): JsonSchema {
  const properties = status.properties as Record<string, JsonSchema>;
  return {
    ...status,
    default: {},
    properties: {
      ...properties,
      observedGeneration: { ...properties.observedGeneration, default: 0 },
    },
  };
}

export function buildCrd(def: CrdDefinition): JsonSchema {
  const openAPIV3Schema: JsonSchema = {
    type: 'object',
    description: def.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: schemaOf(def.spec, 'input'),
      status: unobservedByDefault(schemaOf(def.status, 'output')),
    },
  };
  describeSchema(openAPIV3Schema, def.descriptions);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${def.plural}.${API_GROUP}`,
      labels: { 'app.kubernetes.io/name': 'k8s-runner', 'app.kubernetes.io/part-of': 'agyn' },
    },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ['agyn'],
      },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.columns,
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

export const agentWorkloadCrd = (): JsonSchema =>
  buildCrd({
    kind: 'AgentWorkload',
    plural: 'agentworkloads',
    singular: 'agentworkload',
    shortNames: ['aw'],
    spec: agentWorkloadSpecSchema,
    status: agentWorkloadStatusSchema,
    description: 'An AI-agent workload of the agyn platform, materialized as a Pod.',
    descriptions: AGENT_WORKLOAD_DESCRIPTIONS,
    columns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Reason', type: 'string', jsonPath: '.status.reason' },
      { name: 'Runner', type: 'string', jsonPath: '.status.runner' },
      { name: 'Pod', type: 'string', jsonPath: '.status.podName' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
    ],
  });

export const runnerCrd = (): JsonSchema =>
  buildCrd({
    kind: 'Runner',
    plural: 'runners',
    singular: 'runner',
    shortNames: ['rnr'],
    spec: runnerSpecSchema,
    status: runnerStatusSchema,
    description: 'A runner identity enrolled with the agyn platform, and where its workloads run.',
    descriptions: RUNNER_DESCRIPTIONS,
    columns: [
      { name: 'Scope', type: 'string', jsonPath: '.status.scope' },
      {
        name: 'Enrolled',
        type: 'string',
        jsonPath: ".status.conditions[?(@.type=='Enrolled')].status",
      },
      { name: 'Ready', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
      { name: 'Workloads', type: 'integer', jsonPath: '.status.workloads.total' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  });
