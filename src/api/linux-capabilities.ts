/** The Linux capabilities (capabilities(7)), without the CAP_ prefix, as Kubernetes takes them. */
export const LINUX_CAPABILITIES = [
  'AUDIT_CONTROL',
  'AUDIT_READ',
  'AUDIT_WRITE',
  'BLOCK_SUSPEND',
  'BPF',
  'CHECKPOINT_RESTORE',
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'IPC_LOCK',
  'IPC_OWNER',
  'KILL',
  'LEASE',
  'LINUX_IMMUTABLE',
  'MAC_ADMIN',
  'MAC_OVERRIDE',
  'MKNOD',
  'NET_ADMIN',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_RAW',
  'PERFMON',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYSLOG',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_CHROOT',
  'SYS_MODULE',
  'SYS_NICE',
  'SYS_PACCT',
  'SYS_PTRACE',
  'SYS_RAWIO',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'WAKE_ALARM',
] as const;
export type LinuxCapability = (typeof LINUX_CAPABILITIES)[number];

/** What Pod Security "baseline" lets a container add; "restricted" only NET_BIND_SERVICE. */
export const BASELINE_CAPABILITIES: readonly LinuxCapability[] = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
];
export const RESTRICTED_CAPABILITIES: readonly LinuxCapability[] = ['NET_BIND_SERVICE'];

/** The roles of a workload's containers, as the Runner grants capabilities to them. */
export const CONTAINER_ROLES = ['main', 'init', 'mcp', 'hook', 'ziti', 'other'] as const;
export type ContainerRole = (typeof CONTAINER_ROLES)[number];
