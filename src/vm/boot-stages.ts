import {
  BOOT_STAGE_PREFIX,
  BOOT_STAGES,
  type BootStage,
} from '../../common/protocol/guest-boot.js';

/** One boot-stage marker found on a guest's serial console. */
export interface BootStageMark {
  stage: BootStage;
  /** Guest uptime when the stage began, in seconds. */
  uptimeSeconds: number;
}

const STAGE_NAMES: ReadonlySet<string> = new Set(BOOT_STAGES);

/**
 * The boot-stage markers (`kiln-boot: <stage> <uptime>`, common/protocol/guest-boot.ts) in a
 * serial console log, in boot order, the first of each stage only. Lines that are not markers,
 * unknown stages and unreadable numbers are ignored: the console is the guest's to write and
 * the markers are diagnostics, never a contract the host acts on.
 */
export function parseBootStages(consoleText: string): BootStageMark[] {
  const seen = new Map<BootStage, number>();
  for (const raw of consoleText.split('\n')) {
    const at = raw.indexOf(BOOT_STAGE_PREFIX);
    if (at < 0) continue;
    const [stage, uptime] = raw
      .slice(at + BOOT_STAGE_PREFIX.length)
      .trim()
      .split(/\s+/);
    if (stage === undefined || !STAGE_NAMES.has(stage)) continue;
    const seconds = Number(uptime);
    if (uptime === undefined || !Number.isFinite(seconds) || seconds < 0) continue;
    const name = stage as BootStage;
    if (!seen.has(name)) seen.set(name, seconds);
  }
  return BOOT_STAGES.filter((s) => seen.has(s)).map((stage) => ({
    stage,
    uptimeSeconds: seen.get(stage) ?? 0,
  }));
}

/**
 * Seconds each stage lasted: from its marker to the next one found (the last stage to
 * `endUptimeSeconds` when given). The first entry, `kernel`, is uptime 0 to the first marker.
 */
export function bootStageDurations(
  marks: readonly BootStageMark[],
  endUptimeSeconds?: number,
): { stage: 'kernel' | BootStage; seconds: number }[] {
  const out: { stage: 'kernel' | BootStage; seconds: number }[] = [];
  const first = marks[0];
  if (first === undefined) return out;
  out.push({ stage: 'kernel', seconds: first.uptimeSeconds });
  marks.forEach((mark, i) => {
    const next = marks[i + 1]?.uptimeSeconds ?? endUptimeSeconds;
    if (next !== undefined) out.push({ stage: mark.stage, seconds: next - mark.uptimeSeconds });
  });
  return out;
}
