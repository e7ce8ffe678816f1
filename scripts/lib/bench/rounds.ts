// Arms measured in rounds (bench-access, bench-audit, bench-search --compare): the machine's speed
// drifts over minutes, so each round measures every arm, in an order rotated by one each round (two
// arms: swapped), and the report takes each arm's median over the rounds.

/** The arms in this round's order: rotated by one each round, so that no arm always runs first. */
export const roundOrder = <T>(arms: readonly T[], round: number): T[] => arms.map((_, i) => arms[(i + round) % arms.length]);

/** The median, NaN for no value. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
