import { BUILD_ID_PATTERN } from '../builds/build-id.js';
import { BUILD_STATUSES } from '../builds/build.js';

/**
 * The API described in OpenAPI 3.1 (served at /openapi.json). A test walks every route
 * registered on the app and checks it is described here.
 */
const error = { $ref: '#/components/responses/Error' };
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const scopeParam = { name: 'scope', in: 'path', required: true, schema: { type: 'string' } };
const bearer = [{ bearerAuth: [] }];
const buildJson = {
  description: 'The build',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Build' } } },
};

const webhookSettingsJson = {
  description: 'The settings; signing_secret verifies Kiln-Signature (HMAC-SHA256)',
  content: {
    'application/json': {
      schema: {
        type: 'object',
        properties: {
          default_url: { type: ['string', 'null'] },
          signing_secret: { type: 'string' },
          previous_secret_expires_at: {
            type: ['string', 'null'],
            format: 'date-time',
            description: 'Until when the secret the last rotation replaced signs beside it',
          },
        },
      },
    },
  },
};

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: {
    title: 'Kiln',
    version: '0.1.0',
    description: 'Source tarballs to OCI images inside throwaway microVMs.',
  },
  components: {
    securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    responses: {
      Error: {
        description: 'An error: {"error":{"code","message","details?"}}',
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['error'],
              properties: {
                error: {
                  type: 'object',
                  required: ['code', 'message'],
                  properties: {
                    code: { type: 'string' },
                    message: { type: 'string' },
                    details: { type: 'object' },
                  },
                },
              },
            },
          },
        },
      },
    },
    schemas: {
      Cache: {
        type: 'object',
        required: ['scope', 'size_bytes', 'used_bytes', 'created_at'],
        properties: {
          scope: { type: 'string' },
          size_bytes: { type: 'integer', description: 'Size of the disk, fixed at creation.' },
          used_bytes: {
            type: 'integer',
            description: 'Bytes the committed disk occupies on the host (0 before a commit).',
          },
          created_at: { type: 'string', format: 'date-time' },
          last_commit_at: { type: ['string', 'null'], format: 'date-time' },
          last_commit_build_id: { type: ['string', 'null'] },
          last_build_id: { type: ['string', 'null'] },
          last_build_at: { type: ['string', 'null'], format: 'date-time' },
        },
      },
      Egress: {
        type: 'object',
        description:
          'What an egress build reached through its proxy and what was refused (absent in isolated mode).',
        properties: {
          hosts: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                host: { type: 'string' },
                port: { type: 'integer' },
                connections: { type: 'integer' },
                bytes_in: { type: 'integer' },
                bytes_out: { type: 'integer' },
              },
            },
          },
          denied: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                host: { type: 'string' },
                port: { type: 'integer' },
                address: { type: ['string', 'null'] },
                reason: { type: 'string' },
                message: { type: 'string', example: 'denied 10.0.0.5:6379: private address' },
                at: { type: 'string', format: 'date-time' },
              },
            },
          },
          denied_total: { type: 'integer' },
          failed_connections: { type: 'integer' },
          bytes_in: { type: 'integer' },
          bytes_out: { type: 'integer' },
        },
      },
      Build: {
        type: 'object',
        required: ['id', 'tenant', 'status', 'repository', 'tags', 'created_at'],
        properties: {
          id: { type: 'string', pattern: BUILD_ID_PATTERN.source },
          tenant: { type: 'string' },
          status: { enum: BUILD_STATUSES },
          queue_position: { type: ['integer', 'null'] },
          repository: { type: 'string' },
          tags: { type: 'array', items: { type: 'string' } },
          cache_repository: { type: ['string', 'null'] },
          created_at: { type: 'string', format: 'date-time' },
          started_at: { type: ['string', 'null'], format: 'date-time' },
          finished_at: { type: ['string', 'null'], format: 'date-time' },
          attempts: { type: 'integer' },
          request: { type: 'object' },
          source: { type: 'object' },
          result: {
            type: ['object', 'null'],
            properties: {
              image_ref: { type: 'string' },
              image_refs: {
                type: 'array',
                items: { type: 'string' },
                description: "Every reference pushed, the build's own (tagged with its id) first",
              },
              image_digest: { type: 'string' },
              provenance: {
                type: 'object',
                properties: {
                  hostsContacted: {
                    type: 'array',
                    items: { type: 'string' },
                    description: 'host:port an egress build connected to',
                  },
                },
              },
              egress: { $ref: '#/components/schemas/Egress' },
              registry: {
                type: 'object',
                description:
                  'Base images and pushed digest as the registry observed them under the build token',
                properties: {
                  base_images: { type: 'array', items: { type: 'object' } },
                  pushed_digest: { type: ['string', 'null'] },
                  disagreements: { type: 'array', items: { type: 'string' } },
                },
              },
            },
          },
          error: {
            type: ['object', 'null'],
            properties: {
              code: { type: 'string' },
              message: { type: 'string' },
              log_tail: { type: 'array', items: { type: 'string' } },
              egress: { $ref: '#/components/schemas/Egress' },
            },
          },
          timings: {
            type: 'object',
            description: 'Where the seconds went (docs/contracts.md#timings).',
            properties: {
              phases: { type: 'object', additionalProperties: { type: 'number' } },
              total_seconds: { type: ['number', 'null'] },
              unaccounted_seconds: { type: 'number' },
              guest_reported: { type: 'array', items: { type: 'string' } },
              guest_scaled: { type: 'boolean' },
              after_finish: {
                type: ['object', 'null'],
                additionalProperties: { type: 'number' },
              },
              legacy: { type: 'boolean' },
            },
          },
        },
      },
    },
  },
  paths: {
    '/builds': {
      post: {
        summary: 'Submit a build (multipart/form-data, streamed)',
        security: bearer,
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: {
                type: 'object',
                required: ['source'],
                properties: {
                  source: {
                    type: 'string',
                    format: 'binary',
                    description: 'tar, tar.gz or tar.zst',
                  },
                  dockerfile: { type: 'string' },
                  dockerfile_path: { type: 'string' },
                  cache_size_mb: {
                    type: 'integer',
                    description:
                      'Size of the cache disk when this build creates it (needs cache_scope; at most the operator ceiling).',
                  },
                  context_dir: { type: 'string' },
                  build_args: { type: 'string', description: 'JSON object of strings' },
                  secrets: { type: 'string', description: 'JSON array of secret ids' },
                  cache_scope: { type: 'string' },
                  timeout_seconds: { type: 'integer' },
                  memory_mb: { type: 'integer' },
                  cpus: { type: 'integer' },
                  network_mode: { enum: ['isolated', 'egress'] },
                  allowed_hosts: {
                    type: 'string',
                    description:
                      'egress only: JSON array of host names, IP addresses and *.suffix patterns, within the operator ceiling',
                  },
                  image_name: { type: 'string' },
                  image_tags: {
                    type: 'string',
                    description:
                      'JSON array of 1 to 16 "NAME[:TAG]" (tag default latest); the first NAME is the build\'s repository; not with image_name',
                  },
                  source_sha256: { type: 'string', pattern: '^[a-f0-9]{64}$' },
                  webhook_url: {
                    type: 'string',
                    format: 'uri',
                    description:
                      "Where this build's events are POSTed (signed); default: the tenant's default_url",
                  },
                },
                patternProperties: {
                  '^secret\\.[A-Za-z0-9][A-Za-z0-9._-]{0,127}$': {
                    type: 'string',
                    maxLength: 65536,
                    description:
                      'A per-build secret value (at most 32, 64 KiB each), sent before source; held in memory for this build only, never stored',
                  },
                },
              },
            },
          },
        },
        responses: {
          '202': buildJson,
          '400': error,
          '401': error,
          '403': error,
          '413': error,
          '415': error,
        },
      },
      get: {
        summary: "List the tenant's builds, newest first",
        security: bearer,
        parameters: [
          { name: 'status', in: 'query', schema: { type: 'string' } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } },
          { name: 'cursor', in: 'query', schema: { type: 'string' } },
        ],
        responses: { '200': { description: '{ builds, next_cursor }' }, '401': error },
      },
    },
    '/builds/{id}': {
      get: {
        summary: 'One build (with its queue position while queued)',
        security: bearer,
        parameters: [idParam],
        responses: { '200': buildJson, '404': error },
      },
      delete: {
        summary: 'Cancel a build (idempotent)',
        security: bearer,
        parameters: [idParam],
        responses: { '202': buildJson, '404': error },
      },
    },
    '/builds/{id}/events': {
      get: {
        summary:
          'Build events as Server-Sent Events (status, phase, log, result, heartbeat); log streams are stdout, stderr, system and network (one event per connection the egress proxy refused)',
        security: bearer,
        parameters: [
          idParam,
          { name: 'follow', in: 'query', schema: { type: 'boolean' } },
          { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } },
        ],
        responses: { '200': { description: 'text/event-stream' }, '404': error },
      },
    },
    '/builds/{id}/logs': {
      get: {
        summary: 'The build log as plain text',
        security: bearer,
        parameters: [idParam, { name: 'tail', in: 'query', schema: { type: 'integer' } }],
        responses: { '200': { description: 'text/plain' }, '404': error },
      },
    },
    '/builds/{id}/webhooks': {
      get: {
        summary: "The build's webhook deliveries, each with every attempt",
        security: bearer,
        parameters: [idParam],
        responses: {
          '200': {
            description: 'The deliveries',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    deliveries: {
                      type: 'array',
                      items: {
                        type: 'object',
                        properties: {
                          id: { type: 'string' },
                          event: {
                            enum: [
                              'build.building',
                              'build.ready',
                              'build.failed',
                              'build.cancelled',
                            ],
                          },
                          url: { type: 'string' },
                          state: { enum: ['pending', 'delivered', 'failed'] },
                          created_at: { type: 'string', format: 'date-time' },
                          next_attempt_at: { type: ['string', 'null'], format: 'date-time' },
                          give_up_at: { type: 'string', format: 'date-time' },
                          attempts: {
                            type: 'array',
                            items: {
                              type: 'object',
                              properties: {
                                attempt: { type: 'integer' },
                                started_at: { type: 'string', format: 'date-time' },
                                latency_ms: { type: 'integer' },
                                status_code: { type: ['integer', 'null'] },
                                error: { type: ['string', 'null'] },
                              },
                            },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
          '404': error,
        },
      },
    },
    '/webhook-settings': {
      get: {
        summary: "The tenant's default webhook URL and signing secret (created on first read)",
        security: bearer,
        responses: { '200': webhookSettingsJson, '401': error, '403': error },
      },
      put: {
        summary: "Set or clear (null) the tenant's default webhook URL",
        security: bearer,
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['default_url'],
                properties: { default_url: { type: ['string', 'null'], format: 'uri' } },
              },
            },
          },
        },
        responses: { '200': webhookSettingsJson, '400': error, '401': error, '403': error },
      },
    },
    '/webhook-settings/rotate-secret': {
      post: {
        summary:
          'Replace the signing secret; the old one keeps signing beside it for overlap_seconds',
        security: bearer,
        requestBody: {
          required: false,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: {
                  overlap_seconds: { type: 'integer', minimum: 0, maximum: 604800, default: 86400 },
                },
              },
            },
          },
        },
        responses: { '200': webhookSettingsJson, '400': error, '401': error, '403': error },
      },
    },
    '/secrets': {
      get: {
        summary: "List the tenant's secret ids (never values)",
        security: bearer,
        responses: { '200': { description: '{ secrets: [{ id, updated_at }] }' } },
      },
    },
    '/secrets/{id}': {
      put: {
        summary: 'Store a secret value (encrypted at rest)',
        security: bearer,
        parameters: [idParam],
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['value'],
                properties: { value: { type: 'string' } },
              },
            },
          },
        },
        responses: {
          '200': { description: 'Replaced' },
          '201': { description: 'Created' },
          '400': error,
        },
      },
      delete: {
        summary: 'Delete a secret',
        security: bearer,
        parameters: [idParam],
        responses: { '204': { description: 'Deleted' }, '404': error },
      },
    },
    '/caches': {
      get: {
        summary: "List the tenant's persistent cache disks (one per cache_scope)",
        security: bearer,
        responses: {
          '200': {
            description: '{ caches: [Cache] }',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['caches'],
                  properties: {
                    caches: { type: 'array', items: { $ref: '#/components/schemas/Cache' } },
                  },
                },
              },
            },
          },
        },
      },
    },
    '/caches/{scope}': {
      delete: {
        summary: 'Delete a cache disk; builds running on a fork of it commit nothing',
        security: bearer,
        parameters: [scopeParam],
        responses: { '204': { description: 'Deleted' }, '404': error },
      },
    },
    '/caches/{scope}/prune': {
      post: {
        summary: 'Empty a cache disk: the next build of the scope starts cold',
        security: bearer,
        parameters: [scopeParam],
        responses: {
          '200': {
            description: 'The pruned cache',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Cache' } } },
          },
          '404': error,
        },
      },
    },
    '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'ok' } } } },
    '/readyz': {
      get: {
        summary: 'Readiness: store open and restart recovery done',
        responses: { '200': { description: 'ready' }, '503': error },
      },
    },
    '/metrics': {
      get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text/plain' } } },
    },
    '/openapi.json': {
      get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' } } },
    },
    '/v2/': {
      get: {
        summary: 'OCI distribution-spec v1.1 registry (all /v2/* routes; see the OCI spec)',
        responses: { '200': { description: 'API version check' }, '401': { description: 'Auth' } },
      },
    },
  },
} as const;
