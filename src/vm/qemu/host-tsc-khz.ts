import { readFileSync } from 'node:fs';

/** Used when the host's rate cannot be read (a plausible modern x86 TSC rate). */
export const FALLBACK_TSC_KHZ = 2_000_000;

/**
 * The host's TSC rate in kHz, from the first "cpu MHz" line of /proc/cpuinfo (on hosts with
 * constant_tsc that is the TSC rate). Under TCG the guest's RDTSC reads the host's TSC, so this
 * is the frequency the guest kernel must be told (`tsc_early_khz=`): microvm has no PIT or
 * HPET to calibrate against, and without a stated rate the kernel can wait forever for timer
 * ticks on a loaded host (seen here: boot stuck after "Marking TSC unstable").
 */
export function hostTscKhz(cpuinfo: string = readCpuinfo()): number {
  const m = /^cpu MHz\s*:\s*([0-9]+(?:\.[0-9]+)?)/m.exec(cpuinfo);
  const khz = m?.[1] ? Math.round(Number(m[1]) * 1000) : Number.NaN;
  return Number.isFinite(khz) && khz >= 100_000 && khz <= 10_000_000 ? khz : FALLBACK_TSC_KHZ;
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}
