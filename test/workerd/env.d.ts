// The part of workerd's test API these tests use (the project does not depend on @cloudflare/workers-types).
declare module 'cloudflare:workers' {
  export const env: { MODEL: { fetch(input: string): Promise<Response> } };
  export const exports: { default: { fetch(input: string | Request, init?: RequestInit): Promise<Response> } };
}
