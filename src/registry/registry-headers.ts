/** Headers on every registry answer (distribution spec: clients check the API version). */
export const REGISTRY_HEADERS: Readonly<Record<string, string>> = {
  'Docker-Distribution-API-Version': 'registry/2.0',
};
