import { API_GROUP, API_VERSION } from './common.ts';

/** Where the project's own kinds live on the API server (each one a kube ResourceType). */
export const AGENT_WORKLOADS = {
  group: API_GROUP,
  version: API_VERSION,
  plural: 'agentworkloads',
  kind: 'AgentWorkload',
  namespaced: true,
} as const;
export const RUNNERS = {
  group: API_GROUP,
  version: API_VERSION,
  plural: 'runners',
  kind: 'Runner',
  namespaced: true,
} as const;
