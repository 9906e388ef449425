import type { BuildJob } from '../../common/protocol/build-job.js';

/**
 * The predefined proxy arguments for an `egress` build's steps: HTTP_PROXY, HTTPS_PROXY and
 * NO_PROXY in upper and lower case (tools differ in which they read). Both engines pass them
 * as build arguments (Buildah `--build-arg`, BuildKit `--opt build-arg:`); being predefined
 * ARGs of the Dockerfile reference, they are set in RUN steps without an `ARG` line and are
 * left out of the image config and history. NO_PROXY names the registry, which the guest
 * reaches directly. They override a client's own build args of the same names: in an egress
 * build the proxy is the only way out, so another value could only break the build. Empty
 * when the build has no proxy (isolated mode).
 */
export function proxyBuildArgs(proxy: BuildJob['egressProxy']): Record<string, string> {
  if (proxy === null) return {};
  const args: Record<string, string> = {};
  for (const [name, value] of [
    ['HTTP_PROXY', proxy.url],
    ['HTTPS_PROXY', proxy.url],
    ['NO_PROXY', proxy.noProxy],
  ] as const) {
    args[name] = value;
    args[name.toLowerCase()] = value;
  }
  return args;
}
