import { describe, expect, it } from 'vitest';
import { FALLBACK_TSC_KHZ, hostTscKhz } from '../../../src/vm/qemu/host-tsc-khz.js';
import {
  buildQemuArgv,
  egressForwardCommand,
  escapeQemuValue,
  qemuKernelCmdline,
  registryForwardCommand,
  userNetdev,
} from '../../../src/vm/qemu/qemu-argv.js';
import type { VmSpec } from '../../../src/vm/vmm.js';

function spec(overrides: Partial<VmSpec> = {}): VmSpec {
  return {
    id: 'b_test',
    runDir: '/run/kiln/b_test',
    kernelPath: '/img/vmlinuz',
    initramfsPath: '/img/initramfs.img',
    cmdline: 'quiet',
    memoryMb: 1536,
    cpus: 2,
    disks: [
      { path: '/img/rootfs.img', readOnly: true, serial: 'kiln-root' },
      { path: '/data/src,odd.tar', readOnly: true, serial: 'kiln-source' },
      { path: '/run/kiln/b_test/scratch.img', readOnly: false, serial: 'kiln-scratch' },
    ],
    network: { mode: 'isolated', registryTarget: { host: '127.0.0.1', port: 8083 } },
    consoleLogPath: '/run/kiln/b_test/console.log',
    ...overrides,
  };
}

/** The value following each occurrence of `flag`. */
function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1] ?? ''] : []));
}

describe('buildQemuArgv', () => {
  it('runs a microvm without defaults, without reboot, with the requested memory and vCPUs', () => {
    const argv = buildQemuArgv(spec(), { accel: 'tcg', agentSocketPath: '/run/a.sock' });
    expect(values(argv, '-M')[0]).toMatch(/^microvm/);
    expect(argv).toEqual(
      expect.arrayContaining(['-nodefaults', '-no-user-config', '-nographic', '-no-reboot']),
    );
    expect(values(argv, '-m')).toEqual(['1536M']);
    expect(values(argv, '-smp')).toEqual(['2']);
    expect(values(argv, '-accel')).toEqual(['tcg']);
    expect(argv).not.toContain('-cpu');
  });

  it('uses the host CPU model only under KVM', () => {
    const argv = buildQemuArgv(spec(), { accel: 'kvm', agentSocketPath: '/run/a.sock' });
    expect(values(argv, '-accel')).toEqual(['kvm']);
    expect(values(argv, '-cpu')).toEqual(['host']);
  });

  it('attaches every disk as virtio-blk-device with its serial and read-only flag, commas escaped', () => {
    const argv = buildQemuArgv(spec(), { accel: 'tcg', agentSocketPath: '/run/a.sock' });
    const drives = values(argv, '-drive');
    expect(drives).toHaveLength(3);
    expect(drives[0]).toContain('file=/img/rootfs.img,format=raw,if=none,readonly=on');
    expect(drives[1]).toContain('file=/data/src,,odd.tar,');
    expect(drives[2]).toContain('readonly=off');
    const devices = values(argv, '-device').filter((d) => d.startsWith('virtio-blk-device'));
    expect(devices).toEqual([
      'virtio-blk-device,drive=disk0,serial=kiln-root',
      'virtio-blk-device,drive=disk1,serial=kiln-source',
      'virtio-blk-device,drive=disk2,serial=kiln-scratch',
    ]);
  });

  it('connects the agent port to the host-listening Unix socket as a client', () => {
    const argv = buildQemuArgv(spec(), { accel: 'tcg', agentSocketPath: '/run/kiln/b/agent.sock' });
    expect(values(argv, '-chardev')).toContain(
      'socket,id=agent,path=/run/kiln/b/agent.sock,server=off',
    );
    expect(values(argv, '-device')).toEqual(
      expect.arrayContaining([
        'virtio-serial-device',
        'virtserialport,chardev=agent,name=kiln.agent',
      ]),
    );
  });

  it('appends the serial console to the console log', () => {
    const argv = buildQemuArgv(spec(), { accel: 'tcg', agentSocketPath: '/run/a.sock' });
    expect(values(argv, '-chardev')).toContain(
      'file,id=console,path=/run/kiln/b_test/console.log,append=on',
    );
    expect(values(argv, '-serial')).toEqual(['chardev:console']);
  });

  it('puts the boot contract on the kernel command line, then the TSC rate under TCG, then the extras', () => {
    const argv = buildQemuArgv(spec(), {
      accel: 'tcg',
      agentSocketPath: '/run/a.sock',
      tscKhz: 2445428,
    });
    expect(values(argv, '-append')).toEqual([
      'console=ttyS0 panic=-1 kiln.channel=serial:kiln.agent kiln.net=user kiln.registry=10.0.2.100:5000 tsc_early_khz=2445428 quiet',
    ]);
  });

  it('states no TSC rate under KVM (kvm-clock calibrates)', () => {
    const argv = buildQemuArgv(spec({ cmdline: '' }), {
      accel: 'kvm',
      agentSocketPath: '/run/a.sock',
      tscKhz: 2445428,
    });
    expect(values(argv, '-append')).toEqual([
      'console=ttyS0 panic=-1 kiln.channel=serial:kiln.agent kiln.net=user kiln.registry=10.0.2.100:5000',
    ]);
    expect(qemuKernelCmdline('  ')).toBe(
      'console=ttyS0 panic=-1 kiln.channel=serial:kiln.agent kiln.net=user kiln.registry=10.0.2.100:5000',
    );
  });

  it('restricts isolated user networking to the registry forward', () => {
    const argv = buildQemuArgv(spec(), { accel: 'tcg', agentSocketPath: '/run/a.sock' });
    expect(values(argv, '-netdev')).toEqual([
      'user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:socat - TCP:127.0.0.1:8083',
    ]);
    expect(values(argv, '-device')).toContain('virtio-net-device,netdev=n0');
  });

  it("restricts egress networking too: the registry forward plus one to the build's proxy socket", () => {
    expect(
      userNetdev({
        mode: 'egress',
        registryTarget: { host: '10.1.2.3', port: 5000 },
        egressProxySocket: '/var/lib/kiln/vms/b_1/egress.sock',
      }),
    ).toBe(
      'user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:socat - TCP:10.1.2.3:5000,guestfwd=tcp:10.0.2.100:3128-cmd:socat - UNIX-CONNECT:/var/lib/kiln/vms/b_1/egress.sock',
    );
  });

  it('refuses a proxy socket path socat would split', () => {
    expect(() => egressForwardCommand('/var/lib/kiln,x/egress.sock')).toThrow(/socat/);
    expect(() => egressForwardCommand('/var/lib/a:b/egress.sock')).toThrow(/socat/);
  });
});

describe('registryForwardCommand', () => {
  it('brackets IPv6 targets for socat', () => {
    expect(registryForwardCommand({ host: '::1', port: 9 })).toBe('socat - TCP6:[::1]:9');
  });
});

describe('escapeQemuValue', () => {
  it('doubles commas', () => {
    expect(escapeQemuValue('a,b,,c')).toBe('a,,b,,,,c');
  });
});

describe('hostTscKhz', () => {
  it('reads the first cpu MHz line as kHz', () => {
    expect(hostTscKhz('processor\t: 0\ncpu MHz\t\t: 2445.428\ncpu MHz\t\t: 1200.000\n')).toBe(
      2445428,
    );
  });

  it('falls back to 2 GHz when the rate is missing or absurd', () => {
    expect(hostTscKhz('')).toBe(FALLBACK_TSC_KHZ);
    expect(hostTscKhz('cpu MHz : 0.5\n')).toBe(FALLBACK_TSC_KHZ);
  });
});
