import type { ResourceType } from '../kube/resources.ts';
import { API_GROUP, API_VERSION } from './common.ts';

/** Where the project's own kinds live on the API server. */
export const AGENT_WORKLOADS: ResourceType = {
  group: API_GROUP,
  version: API_VERSION,
  plural: 'agentworkloads',
  kind: 'AgentWorkload',
  namespaced: true,
};
export const RUNNERS: ResourceType = {
  group: API_GROUP,
  version: API_VERSION,
  plural: 'runners',
  kind: 'Runner',
  namespaced: true,
};
