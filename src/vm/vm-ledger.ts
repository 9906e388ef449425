import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseJsonObject } from './parse-json-object.js';
import type { VmProcessRecord } from './vmm.js';
import { syncPath } from '../storage/sync-path.js';

/** What the ledger knows about one VM run: its run dir and, once started, its VMM process. */
export interface VmLedgerEntry {
  vmId: string;
  /** Directory holding the VM's sockets, console log and volumes; removed on recovery. */
  runDir: string;
  /** The VMM process, once spawned. */
  process: VmProcessRecord | null;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Crash-recovery ledger (docs/contracts.md#recovery): one JSON file per VM, written to a temp file,
 * fsynced and renamed (then the directory fsynced) before the thing it describes exists — the run
 * dir before it is created, the process right after it is spawned — so a restarted daemon finds
 * everything a crashed one left behind. Entries are removed once the run is cleaned up.
 */
export class VmLedger {
  constructor(private readonly dir: string) {}

  /** Writes (or replaces) the entry for `entry.vmId`, durably. */
  async record(entry: VmLedgerEntry): Promise<void> {
    const file = this.fileFor(entry.vmId);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp`;
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(entry));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    await syncPath(this.dir);
  }

  /** Forgets a VM once everything it created is gone. Idempotent. */
  async remove(vmId: string): Promise<void> {
    await rm(this.fileFor(vmId), { force: true });
  }

  /** Every entry on disk; unreadable files are reported as `corrupt` so callers can drop them. */
  async list(): Promise<{ entries: VmLedgerEntry[]; corrupt: string[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], corrupt: [] };
      throw err;
    }
    const entries: VmLedgerEntry[] = [];
    const corrupt: string[] = [];
    for (const name of names.sort()) {
      const file = path.join(this.dir, name);
      if (!name.endsWith('.json')) {
        // A temp file from a write cut short by a crash: the rename never happened.
        corrupt.push(file);
        continue;
      }
      const entry = parseEntry(await readFile(file, 'utf8').catch(() => ''));
      if (entry) entries.push(entry);
      else corrupt.push(file);
    }
    return { entries, corrupt };
  }

  private fileFor(vmId: string): string {
    if (!ID_PATTERN.test(vmId)) throw new Error(`invalid VM id ${JSON.stringify(vmId)}`);
    return path.join(this.dir, `${vmId}.json`);
  }
}

function parseEntry(text: string): VmLedgerEntry | null {
  const v = parseJsonObject(text);
  if (v === null) return null;
  if (typeof v.vmId !== 'string' || !ID_PATTERN.test(v.vmId)) return null;
  if (typeof v.runDir !== 'string' || !path.isAbsolute(v.runDir)) return null;
  if (v.process === null) return { vmId: v.vmId, runDir: v.runDir, process: null };
  if (typeof v.process !== 'object') return null;
  const p = v.process as Record<string, unknown>;
  if (
    typeof p.pid !== 'number' ||
    !Number.isSafeInteger(p.pid) ||
    p.pid <= 1 ||
    typeof p.startTicks !== 'number' ||
    typeof p.executable !== 'string' ||
    typeof p.vmId !== 'string'
  ) {
    return null;
  }
  return {
    vmId: v.vmId,
    runDir: v.runDir,
    process: { vmId: p.vmId, pid: p.pid, startTicks: p.startTicks, executable: p.executable },
  };
}
