// Per-key rate limits. On Cloudflare: the Workers Rate Limiting binding (wrangler.toml [[ratelimits]]), counted per
// Cloudflare location and eventually consistent, which is what Cloudflare offers for this and fine for abuse
// protection (not for exact billing quotas). On Node: a sliding-window counter in this process, correct for one
// process (a Node fleet behind a balancer would need a shared store).
import type { MiddlewareHandler } from 'hono';
import type { AuthEnv } from './auth.ts';
import { errorResponse, rateLimited } from './errors.ts';

/** The Workers Rate Limiting binding's API (the local fallback implements the same). */
export interface RateLimiter {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

/** Sliding window over two fixed one-minute buckets (the usual approximation, O(1) per key). */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, { minute: number; current: number; previous: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** `cost`: how much this call uses up (1 per request; a token count for the token budget). */
  async limit({ key, cost = 1 }: { key: string; cost?: number }): Promise<{ success: boolean }> {
    const t = this.now() / 60_000;
    const minute = Math.floor(t);
    let b = this.buckets.get(key);
    if (!b || b.minute < minute - 1) b = { minute, current: 0, previous: 0 };
    else if (b.minute === minute - 1) b = { minute, current: 0, previous: b.current };
    const estimate = b.previous * (1 - (t - minute)) + b.current;
    const success = estimate + cost - 1 < this.perMinute; // cost 1: the plain request count
    if (success) b.current += cost;
    this.buckets.set(key, b);
    if (this.buckets.size > 10_000) this.evict(minute);
    return { success };
  }

  private evict(minute: number): void {
    for (const [key, b] of this.buckets) if (b.minute < minute - 1) this.buckets.delete(key);
  }
}

export function rateLimit(limiter: RateLimiter | null): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    if (limiter) {
      const { success } = await limiter.limit({ key: c.get('apiKeyId') });
      if (!success) {
        c.header('Retry-After', '60');
        return errorResponse(
          c,
          rateLimited('Rate limit reached for this API key; retry after the time in Retry-After'),
        );
      }
    }
    await next();
  };
}
