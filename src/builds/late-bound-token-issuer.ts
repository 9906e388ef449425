import type { BuildTokenIssuer } from './build-token-issuer.js';
import type { Build } from './build.js';
import { AppError } from '../errors/app-error.js';

/**
 * Breaks the wiring cycle between the manager (the registry's BuildActivity) and the registry
 * (the manager's token issuer): the manager gets this object, the composition root binds the
 * registry's issuer once it exists. Issuing before bind() is a wiring bug.
 */
export class LateBoundTokenIssuer implements BuildTokenIssuer {
  private target: BuildTokenIssuer | null = null;

  bind(issuer: BuildTokenIssuer): void {
    if (this.target !== null) throw new Error('token issuer already bound');
    this.target = issuer;
  }

  issueBuildToken(build: Build): Promise<string> {
    if (this.target === null) {
      return Promise.reject(new AppError('INTERNAL', 'build token issuer is not wired yet'));
    }
    return this.target.issueBuildToken(build);
  }
}
