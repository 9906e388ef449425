import type { Migration } from '../migration.js';

/**
 * Webhook signing-secret rotation: the secret a rotation replaced, sealed like the current
 * one, and when it stops signing (milliseconds since the epoch). Until then every delivery
 * carries a signature under each secret, so receivers can switch at their own pace.
 */
export const migration0010WebhookSecretRotation: Migration = {
  version: 10,
  name: 'webhook-secret-rotation',
  up(db) {
    db.exec(`
      ALTER TABLE webhook_tenants ADD COLUMN previous_secret_iv BLOB;
      ALTER TABLE webhook_tenants ADD COLUMN previous_secret_tag BLOB;
      ALTER TABLE webhook_tenants ADD COLUMN previous_secret_ciphertext BLOB;
      ALTER TABLE webhook_tenants ADD COLUMN previous_expires_at INTEGER;
    `);
  },
};
