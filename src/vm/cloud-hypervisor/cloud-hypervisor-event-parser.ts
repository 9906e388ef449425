import { parseJsonObject } from '../parse-json-object.js';

/** One event from Cloud Hypervisor's `--event-monitor` stream. */
export interface CloudHypervisorEvent {
  /** Emitting component, e.g. "vm", "vmm", "virtio-device". */
  source: string;
  /** What happened, e.g. "booted", "rebooting", "shutdown". */
  event: string;
  properties: Record<string, string> | null;
}

/** Largest single event accepted; anything bigger is garbage and is dropped. */
const MAX_EVENT_BYTES = 64 * 1024;

/**
 * Splits Cloud Hypervisor's event-monitor stream into events. The VMM writes each event as
 * pretty-printed JSON (`serde_json::to_string_pretty`) followed by a blank line
 * (event_monitor crate; vmm `start_event_monitor_thread`), so events span several lines and
 * chunks may cut them anywhere. The parser tracks brace depth outside JSON strings and emits
 * one event per complete top-level object.
 */
export class CloudHypervisorEventParser {
  private pending: number[] = [];
  private depth = 0;
  private inString = false;
  private escaped = false;

  push(chunk: Buffer): CloudHypervisorEvent[] {
    const events: CloudHypervisorEvent[] = [];
    for (const byte of chunk) {
      if (this.depth === 0) {
        // Between objects only whitespace is expected; skip anything else.
        if (byte === 0x7b) {
          this.pending = [byte];
          this.depth = 1;
          this.inString = false;
          this.escaped = false;
        }
        continue;
      }
      this.pending.push(byte);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (byte === 0x5c) this.escaped = true;
        else if (byte === 0x22) this.inString = false;
      } else if (byte === 0x22) {
        this.inString = true;
      } else if (byte === 0x7b) {
        this.depth += 1;
      } else if (byte === 0x7d) {
        this.depth -= 1;
        if (this.depth === 0) {
          const event = toEvent(Buffer.from(this.pending).toString('utf8'));
          if (event !== null) events.push(event);
          this.pending = [];
        }
      }
      if (this.pending.length > MAX_EVENT_BYTES) {
        this.pending = [];
        this.depth = 0;
      }
    }
    return events;
  }
}

function toEvent(text: string): CloudHypervisorEvent | null {
  const record = parseJsonObject(text);
  if (record === null) return null;
  const { source, event, properties } = record;
  if (typeof source !== 'string' || typeof event !== 'string') return null;
  let props: Record<string, string> | null = null;
  if (typeof properties === 'object' && properties !== null) {
    props = {};
    for (const [key, v] of Object.entries(properties)) props[key] = String(v);
  }
  return { source, event, properties: props };
}

/** True for the events Cloud Hypervisor emits when the guest resets (vmm `vm_reboot`). */
export function isGuestRebootEvent(event: CloudHypervisorEvent): boolean {
  return event.source === 'vm' && (event.event === 'rebooting' || event.event === 'rebooted');
}
