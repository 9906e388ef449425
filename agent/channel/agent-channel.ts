import type { Readable, Writable } from 'node:stream';

/**
 * The agent's end of the host channel (docs/contracts.md#agent-channel): a byte stream in each
 * direction. Under QEMU it is the virtio-serial port; under Cloud Hypervisor a socat bridge to
 * vsock.
 */
export interface AgentChannel {
  /** Bytes from the host; ends when the host goes away. */
  readonly input: Readable;
  /** Bytes to the host; `write()` returning false means wait for `drain`. */
  readonly output: Writable;
  /**
   * Ends the output and releases the channel once everything written has been handed on
   * (closes the port or lets the bridge flush and exit). Safe to call twice.
   */
  close(): Promise<void>;
}
