import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { AgentWorkloadSpec } from '../api/agentworkload.ts';
import type { DockerImplementation } from '../api/runner.ts';
import { HELPER_SECURITY_CONTEXT } from './pod-security.ts';
import { allContainers, WorkloadConfigError } from './workload-config.ts';

export const DOCKER_HOST = 'tcp://localhost:2375';
export const DOCKER_DIND_IMAGE = 'docker:27-dind';
export const DOCKER_DIND_ROOTLESS_IMAGE = 'docker:27-dind-rootless';
export const DOCKER_DAEMON_CONTAINER = 'docker-daemon';
export const DOCKER_SUBID_INIT_CONTAINER = 'docker-subid-init';
export const DOCKER_VOLUMES = {
  data: 'docker-data',
  run: 'docker-run',
  tun: 'docker-tun',
  subid: 'docker-subid',
} as const;
export const DOCKER_ROOTLESS_ANNOTATIONS: Readonly<Record<string, string>> = {
  'container.apparmor.security.beta.kubernetes.io/docker-daemon': 'unconfined',
  'seccomp.security.alpha.kubernetes.io/pod': 'unconfined',
  'container.seccomp.security.alpha.kubernetes.io/docker-daemon': 'unconfined',
};

/**
 * Writes /subid/subuid and /subid/subgid for user `rootless` from the size N of the
 * pod's user-namespace maps: 1..min(N-1, 999), then 1001..N-1 (1000 is rootless itself).
 */
export const DOCKER_SUBID_SCRIPT = [
  'set -eu',
  'write_ranges() {',
  '  size=$(awk \'NR == 1 { print $3 }\' "$1")',
  '  last=$((size - 1))',
  '  : > "$2"',
  '  if [ "$last" -ge 1 ]; then',
  '    first=$last',
  '    if [ "$first" -gt 999 ]; then first=999; fi',
  '    echo "rootless:1:$first" >> "$2"',
  '  fi',
  '  if [ "$last" -ge 1001 ]; then',
  '    echo "rootless:1001:$((last - 1000))" >> "$2"',
  '  fi',
  '}',
  'write_ranges /proc/self/uid_map /subid/subuid',
  'write_ranges /proc/self/gid_map /subid/subgid',
  '',
].join('\n');

/** What the docker capability adds to a Pod. */
export interface DockerPlan {
  daemon: IContainer;
  subidInit?: IContainer;
  volumes: IVolume[];
  annotations: Record<string, string>;
  hostUsers?: false;
  runtimeClassName?: string;
}

function dockerReservedNames(implementation: DockerImplementation): {
  containers: string[];
  volumes: string[];
} {
  return implementation === 'rootless'
    ? {
        containers: [DOCKER_DAEMON_CONTAINER, DOCKER_SUBID_INIT_CONTAINER],
        volumes: [
          DOCKER_VOLUMES.data,
          DOCKER_VOLUMES.run,
          DOCKER_VOLUMES.tun,
          DOCKER_VOLUMES.subid,
        ],
      }
    : { containers: [DOCKER_DAEMON_CONTAINER], volumes: [DOCKER_VOLUMES.data] };
}

/** Refuses containers and volumes named like the docker capability's own. */
export function checkDockerNames(
  spec: AgentWorkloadSpec,
  implementation: DockerImplementation,
): void {
  const reserved = dockerReservedNames(implementation);
  for (const { spec: container, field } of allContainers(spec)) {
    if (reserved.containers.includes(container.name)) {
      throw new WorkloadConfigError(
        'capability_container_name_conflict',
        `${field}.name`,
        `${container.name} is reserved by the docker capability`,
      );
    }
  }
  spec.volumes.forEach((volume, i) => {
    if (reserved.volumes.includes(volume.name)) {
      throw new WorkloadConfigError(
        'capability_volume_name_conflict',
        `spec.volumes[${i}].name`,
        `${volume.name} is reserved by the docker capability`,
      );
    }
  });
}

/** The docker daemon (and its helpers) of one implementation. */
export function dockerPlan(implementation: DockerImplementation): DockerPlan {
  const env: IEnvVar[] = [{ name: 'DOCKER_TLS_CERTDIR', value: '' }];
  switch (implementation) {
    case 'rootless':
      return {
        daemon: {
          name: DOCKER_DAEMON_CONTAINER,
          image: DOCKER_DIND_ROOTLESS_IMAGE,
          env,
          securityContext: {
            allowPrivilegeEscalation: true,
            seccompProfile: { type: 'Unconfined' },
            appArmorProfile: { type: 'Unconfined' },
            procMount: 'Unmasked',
          },
          volumeMounts: [
            { name: DOCKER_VOLUMES.data, mountPath: '/home/rootless/.local/share' },
            { name: DOCKER_VOLUMES.run, mountPath: '/run/user/1000' },
            { name: DOCKER_VOLUMES.tun, mountPath: '/dev/net/tun' },
            {
              name: DOCKER_VOLUMES.subid,
              mountPath: '/etc/subuid',
              subPath: 'subuid',
              readOnly: true,
            },
            {
              name: DOCKER_VOLUMES.subid,
              mountPath: '/etc/subgid',
              subPath: 'subgid',
              readOnly: true,
            },
          ],
        },
        subidInit: {
          name: DOCKER_SUBID_INIT_CONTAINER,
          image: DOCKER_DIND_ROOTLESS_IMAGE,
          command: ['/bin/sh', '-c', DOCKER_SUBID_SCRIPT],
          securityContext: { ...HELPER_SECURITY_CONTEXT },
          volumeMounts: [{ name: DOCKER_VOLUMES.subid, mountPath: '/subid' }],
        },
        volumes: [
          { name: DOCKER_VOLUMES.data, emptyDir: {} },
          { name: DOCKER_VOLUMES.run, emptyDir: {} },
          { name: DOCKER_VOLUMES.tun, hostPath: { path: '/dev/net/tun', type: 'CharDevice' } },
          { name: DOCKER_VOLUMES.subid, emptyDir: {} },
        ],
        annotations: { ...DOCKER_ROOTLESS_ANNOTATIONS },
        hostUsers: false,
      };
    case 'privileged':
    case 'kata-qemu':
    case 'kata-fc': {
      const plan: DockerPlan = {
        daemon: {
          name: DOCKER_DAEMON_CONTAINER,
          image: DOCKER_DIND_IMAGE,
          env,
          securityContext: { privileged: true, allowPrivilegeEscalation: true },
          volumeMounts: [{ name: DOCKER_VOLUMES.data, mountPath: '/var/lib/docker' }],
        },
        volumes: [{ name: DOCKER_VOLUMES.data, emptyDir: {} }],
        annotations: {},
      };
      if (implementation !== 'privileged') plan.runtimeClassName = implementation;
      return plan;
    }
    default:
      throw new WorkloadConfigError(
        'unknown_docker_implementation',
        'runner.capabilityImplementations.docker',
        String(implementation satisfies never),
      );
  }
}
