/** The CRI request messages berth reads, as proto-loader decodes them (keepCase, longs as strings). */

export type Labels = Record<string, string>;

export interface NamespaceOptions {
  network?: string;
  pid?: string;
  ipc?: string;
}

export interface PortMapping {
  protocol?: string;
  container_port?: number;
  host_port?: number;
  host_ip?: string;
}

export interface SandboxConfig {
  metadata?: { name?: string; uid?: string; namespace?: string; attempt?: number };
  hostname?: string;
  log_directory?: string;
  dns_config?: { servers?: string[]; searches?: string[]; options?: string[] };
  port_mappings?: PortMapping[];
  labels?: Labels;
  annotations?: Labels;
  linux?: { cgroup_parent?: string; security_context?: { namespace_options?: NamespaceOptions }; sysctls?: Labels };
}

export interface Resources {
  cpu_period?: string | number;
  cpu_quota?: string | number;
  cpu_shares?: string | number;
  memory_limit_in_bytes?: string | number;
  cpuset_cpus?: string;
  cpuset_mems?: string;
}

export interface SecurityContext {
  capabilities?: { add_capabilities?: string[]; drop_capabilities?: string[] };
  privileged?: boolean;
  namespace_options?: { pid?: string } | null;
  run_as_user?: { value: string | number } | null;
  run_as_group?: { value: string | number } | null;
  run_as_username?: string;
  readonly_rootfs?: boolean;
  supplemental_groups?: (string | number)[];
  no_new_privs?: boolean;
  masked_paths?: string[];
  readonly_paths?: string[];
  seccomp_profile_path?: string;
  seccomp?: { profile_type?: string; localhost_ref?: string } | null;
}

export interface ContainerConfig {
  metadata?: { name?: string; attempt?: number };
  image?: { image?: string };
  command?: string[];
  args?: string[];
  working_dir?: string;
  envs?: { key: string; value: string }[];
  mounts?: { container_path?: string; host_path?: string; readonly?: boolean; propagation?: string }[];
  labels?: Labels;
  annotations?: Labels;
  log_path?: string;
  stdin?: boolean;
  stdin_once?: boolean;
  tty?: boolean;
  linux?: { resources?: Resources; security_context?: SecurityContext };
}
