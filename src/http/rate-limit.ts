// Rate limits per client: a token bucket per key, in this process's memory (a restart forgets the
// counts, and several server processes each count on their own). RATE_LIMIT requests per minute,
// with a burst of as many: a client that sends faster is refused until its bucket refills.
//
// Not @fastify/rate-limit (checked: 11.x, fastify org, well kept): it checks in a route-level hook,
// which runs after the global authentication hook, so requests refused by authentication (401:
// token or certificate guessing) would never be counted, and /oidc (taken over by the OpenID
// provider in its route hook) would escape. Here, one store serves a check before authentication
// (by address), the count after it (by client), and the count of refused authentications.

export interface Verdict {
  ok: boolean;
  /** Seconds until one request is allowed again (when not ok). */
  retryAfter: number;
  remaining: number;
}

interface Bucket {
  tokens: number;
  at: number;
  /**
   * Refused until then: the Retry-After last given, in whole seconds (rounded up), is kept, so a
   * client that waits less than it was told is refused again, and one that waits as told is served.
   */
  until?: number;
}

export class RateLimiter {
  readonly perMinute: number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private lastSweep: number;

  constructor(perMinute: number, opts: { maxKeys?: number; now?: () => number } = {}) {
    this.perMinute = perMinute;
    this.perMs = perMinute / 60_000;
    this.maxKeys = opts.maxKeys ?? 100_000;
    this.now = opts.now ?? Date.now;
    this.lastSweep = this.now();
  }

  private bucket(key: string, t: number): Bucket {
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.perMinute, b.tokens + (t - b.at) * this.perMs);
      b.at = t;
      return b;
    }
    if (this.buckets.size >= this.maxKeys || t - this.lastSweep > 60_000) this.sweep(t);
    b = { tokens: this.perMinute, at: t };
    this.buckets.set(key, b);
    return b;
  }

  /** Counts one request against the key. */
  take(key: string): Verdict {
    const t = this.now();
    const b = this.bucket(key, t);
    const refused = this.refusal(b, b.tokens, t);
    if (refused) {
      // A new time only when none runs: refusals meanwhile must not push it back by their rounding.
      if (b.until === undefined || t >= b.until) b.until = t + refused.retryAfter * 1000;
      return refused;
    }
    b.tokens -= 1;
    b.until = undefined;
    return { ok: true, retryAfter: 0, remaining: Math.floor(b.tokens) };
  }

  /** Whether the key could make a request now, without counting one. */
  peek(key: string): Verdict {
    const b = this.buckets.get(key);
    if (!b) return { ok: true, retryAfter: 0, remaining: this.perMinute };
    const t = this.now();
    const tokens = Math.min(this.perMinute, b.tokens + (t - b.at) * this.perMs);
    return this.refusal(b, tokens, t) ?? { ok: true, retryAfter: 0, remaining: Math.floor(tokens) };
  }

  /** The refusal, while the bucket lacks a token or a Retry-After given runs. */
  private refusal(b: Bucket, tokens: number, t: number): Verdict | undefined {
    if (b.until !== undefined && t < b.until) return { ok: false, retryAfter: Math.max(1, Math.ceil((b.until - t) / 1000)), remaining: 0 };
    if (tokens >= 1) return undefined;
    return { ok: false, retryAfter: Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000)), remaining: 0 };
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Forgets full buckets (idle clients); past the key ceiling, the oldest keys too. */
  private sweep(t: number): void {
    this.lastSweep = t;
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.at) * this.perMs >= this.perMinute) this.buckets.delete(k);
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) break;
      this.buckets.delete(k);
    }
  }
}
