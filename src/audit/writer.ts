// Group commit of audit records. Each request hands its AuditEvent to write() and waits; events of
// concurrent requests join one pending batch, flushed as one INSERT statement (one transaction,
// one commit) when the batch is full or `maxWaitMs` after its first event, with at most
// `concurrency` flushes at once: events that arrive while every flush is busy wait for the next
// one, so batches grow with the load and a commit's cost is shared by every request in it.
// write() resolves only once the event's batch is committed: the answer is held until then.

export interface WriterOptions {
  /** Flush when this many events are pending. */
  maxBatch: number;
  /** Flush at the latest this long after the first pending event (0: at the end of this turn of the event loop). */
  maxWaitMs: number;
  /** Flushes in flight at once. */
  concurrency: number;
}

interface Pending<E> {
  event: E;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface WriterStats {
  events: number;
  batches: number;
  failures: number;
  largestBatch: number;
}

export class GroupCommitWriter<E> {
  private pending: Pending<E>[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private readonly insert: (events: E[]) => Promise<void>;
  private readonly options: WriterOptions;
  private idle: (() => void)[] = [];
  readonly stats: WriterStats = { events: 0, batches: 0, failures: 0, largestBatch: 0 };

  constructor(insert: (events: E[]) => Promise<void>, options: WriterOptions) {
    this.insert = insert;
    this.options = { maxBatch: Math.max(1, options.maxBatch), maxWaitMs: Math.max(0, options.maxWaitMs), concurrency: Math.max(1, options.concurrency) };
  }

  /** Resolves when the event is committed; rejects when its batch (and its retry alone) failed. */
  write(event: E): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      if (this.pending.length >= this.options.maxBatch) this.flush();
      else this.arm();
    });
  }

  /** Resolves once nothing is pending or in flight (shutdown). */
  drained(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private arm(): void {
    if (this.timer) return;
    const fire = () => {
      this.timer = undefined;
      this.flush();
    };
    this.timer = this.options.maxWaitMs === 0 ? setImmediate(fire) : setTimeout(fire, this.options.maxWaitMs);
  }

  private flush(): void {
    if (this.timer) {
      if (this.options.maxWaitMs === 0) clearImmediate(this.timer as NodeJS.Immediate);
      else clearTimeout(this.timer as NodeJS.Timeout);
      this.timer = undefined;
    }
    while (this.pending.length > 0 && this.inFlight < this.options.concurrency) {
      const batch = this.pending.splice(0, this.options.maxBatch);
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        // What arrived meanwhile goes at once: it has waited for this flush already.
        if (this.pending.length > 0) this.flush();
        else if (this.inFlight === 0) for (const r of this.idle.splice(0)) r();
      });
    }
  }

  private async run(batch: Pending<E>[]): Promise<void> {
    try {
      await this.insert(batch.map((p) => p.event));
      this.count(batch.length);
      for (const p of batch) p.resolve();
    } catch (err) {
      if (batch.length === 1) {
        this.stats.failures++;
        batch[0].reject(err);
        return;
      }
      // One event the database refuses must not fail the others: each is tried alone.
      for (const p of batch) {
        try {
          await this.insert([p.event]);
          this.count(1);
          p.resolve();
        } catch (e) {
          this.stats.failures++;
          p.reject(e);
        }
      }
    }
  }

  private count(n: number): void {
    this.stats.events += n;
    this.stats.batches++;
    if (n > this.stats.largestBatch) this.stats.largestBatch = n;
  }
}
