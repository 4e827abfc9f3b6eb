// Type-checks the writing-tool API (scoring with alternatives, ranking, sessions, logit controls)
// against js/index.d.ts. Not run; `npx tsc -p tests/types` only.
import { load, type Alternative, type Gpt2Model, type RankResult, type Session } from 'gpt2-wasm';

export async function features(): Promise<string> {
  const model = await load();
  const scored = model.score('The cat sat.', { topK: 3 });
  const alts: Alternative[] = scored.tokens[1]?.alternatives ?? [];
  const best: string = alts.map((a) => `${a.text} ${a.logprob.toFixed(2)} #${a.id}`).join(', ');
  const ranked: RankResult[] = model.rank('Review: great film. Sentiment:', [' positive', ' negative'], { by: 'sum' });
  const top: string = ranked[0]?.choice ?? '';
  const session: Session = model.session();
  const ids: number[] = session.append('Once upon a time');
  const fork: Session = session.fork();
  const gen = fork.generate({ maxTokens: 8, logitBias: { [ids[0] ?? 0]: -Infinity }, bannedWords: ['dragon'] });
  let text = '';
  for await (const piece of gen) text += piece.text;
  const summary = await gen.summary;
  fork.rewind(session.position);
  const counted: number = fork.computedTokens + summary.promptTokens;
  const bias = new Map<number, number>([[1, 2]]);
  await model.generate('x', { logitBias: bias, bannedWords: 'word' }).next();
  const draft = await load(undefined, { precision: 'q8_0', into: model });
  const spec = model.generate('x', { temperature: 0, draft, draftTokens: 4 });
  const rate: number | null | undefined = (await spec.summary).speculative?.rate;
  const withDraft = await load(undefined, { draft: undefined, draftTokens: undefined });
  const big = await load('models', { draft: 'models', draftTokens: 3, draftPrecision: 'q8_0' });
  const own: Gpt2Model | null = big.draft;
  const k: number | null = big.draftTokens;
  const sampled = big.generate('x', { temperature: 0.8, seed: 1, draft: null });
  await sampled.next();
  withDraft.dispose();
  big.dispose();
  void own;
  void k;
  session.dispose();
  model.dispose();
  return `${best} ${top} ${text} ${counted} ${model.tokenTexts([1, 2]).join('')} ${fork.text} ${fork.tokens.length} ${fork.disposed} ${rate}`;
}
