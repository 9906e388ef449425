import { describe, expect, it } from 'vitest';
import { MAX_IMAGE_TAGS, parseBuildRequest } from '../../src/builds/build-request-parser.js';
import { AppError } from '../../src/errors/app-error.js';

const policy = {
  defaultTimeoutSeconds: 600,
  maxTimeoutSeconds: 3600,
  defaultMemoryMb: 1024,
  minMemoryMb: 256,
  maxMemoryMb: 8192,
  defaultCpus: 1,
  maxCpus: 4,
};

function parse(fields: Record<string, string>, fieldOnly = false) {
  return parseBuildRequest(new Map(Object.entries(fields)), policy, { fieldOnly }).request;
}

function refusal(fields: Record<string, string>): {
  code: string;
  message: string;
  details: unknown;
} {
  try {
    parse(fields);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    const e = err as AppError;
    return { code: e.code, message: e.message, details: e.details };
  }
  throw new Error('expected a refusal');
}

describe('image_tags', () => {
  it('reads NAME[:TAG] entries (latest when no tag), each once', () => {
    expect(
      parse({ image_tags: JSON.stringify(['web:v1', 'team/api', 'web:v1', 'web:1.2.3-rc_1']) })
        .imageTags,
    ).toEqual([
      { name: 'web', tag: 'v1' },
      { name: 'team/api', tag: 'latest' },
      { name: 'web', tag: '1.2.3-rc_1' },
    ]);
    const request = parse({});
    expect(request.imageTags).toBeUndefined();
    expect(request.imageName).toBeNull();
  });

  it('answers INVALID_IMAGE_TAGS naming the bad entry', () => {
    for (const [value, tag] of [
      ['["Web:v1"]', 'Web:v1'],
      ['["web:"]', 'web:'],
      ['["web:-x"]', 'web:-x'],
      ['[":v1"]', ':v1'],
      ['["web:b_aaaaaaaaaaaaaaaaaaaa"]', 'web:b_aaaaaaaaaaaaaaaaaaaa'],
      ['["127.0.0.1:5000/web:v1"]', '127.0.0.1:5000/web:v1'],
    ] as const) {
      const got = refusal({ image_tags: value });
      expect(got.code, value).toBe('INVALID_IMAGE_TAGS');
      expect(got.details, value).toEqual({ field: 'image_tags', tag });
    }
  });

  it('answers INVALID_IMAGE_TAGS for a value that is not a list of 1 to 16 strings', () => {
    const many = JSON.stringify(Array.from({ length: MAX_IMAGE_TAGS + 1 }, (_, i) => `w:v${i}`));
    for (const value of ['[]', '"web"', '[1]', many]) {
      const got = refusal({ image_tags: value });
      expect(got.code, value).toBe('INVALID_IMAGE_TAGS');
      expect(got.details, value).toEqual({ field: 'image_tags' });
    }
    expect(refusal({ image_tags: 'not json' }).code).toBe('INVALID_FIELD');
  });

  it('refuses image_name and image_tags together, but checks each alone as it arrives', () => {
    const both = { image_name: 'web', image_tags: '["web:v1"]' };
    expect(refusal(both)).toMatchObject({
      code: 'INVALID_IMAGE_TAGS',
      message: 'image_tags: give image_name or image_tags, not both',
    });
    expect(parse({ image_tags: '["web:v1"]' }, true).imageTags).toEqual([
      { name: 'web', tag: 'v1' },
    ]);
  });
});
