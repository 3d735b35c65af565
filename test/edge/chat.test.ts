// /v1/chat/completions on the edge (Node, shipped model, no runner) through the official `openai` client: the chat
// template's prompt, streaming with usage, stop, max_completion_tokens, seed, and bad requests. The runner-routed
// long chat is in edge-stack.test.ts.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderChat, TURN_STOP } from '../../worker/chat-template.ts';
import { buildEdgeModel } from '../../worker/model/build.ts';
import type { RunningEdge } from '../../worker/node-server.ts';
import { EDGE_KEY, expectError, post, startEdge } from './helpers.ts';

let edge: RunningEdge;
let openai: OpenAI;
const model = 'deciserve-mamba';
const messages = [
  { role: 'system' as const, content: 'The book of Genesis.' },
  { role: 'user' as const, content: 'In the beginning' },
  { role: 'assistant' as const, content: 'God created the heaven and the earth.' },
  { role: 'user' as const, content: [{ type: 'text' as const, text: 'And God said' }] },
];

beforeAll(async () => {
  const { dir } = await buildEdgeModel();
  edge = await startEdge(dir, {});
  openai = new OpenAI({ apiKey: EDGE_KEY, baseURL: `${edge.url}/v1`, maxRetries: 0 });
}, 120_000);

afterAll(async () => {
  await edge?.close();
});

describe('chat completions at the edge', () => {
  let reply = '';

  it('renders the messages with the documented template and answers as /v1/completions does on that prompt', async () => {
    const prompt = renderChat(messages);
    expect(prompt).toBe(
      'System: The book of Genesis.\nUser: In the beginning\nAssistant: God created the heaven and the earth.\nUser: And God said\nAssistant:',
    );
    const { data, response } = await openai.chat.completions
      .create({ model, messages, max_tokens: 12, temperature: 0 })
      .withResponse();
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    expect(data.object).toBe('chat.completion');
    expect(data.id).toMatch(/^chatcmpl-/);
    const choice = data.choices[0]!;
    expect(choice.message.role).toBe('assistant');
    reply = choice.message.content!;
    expect(reply.length).toBeGreaterThan(0);

    const plain = (await (
      await post(edge, '/v1/completions', { model, prompt, max_tokens: 12, temperature: 0, stop: TURN_STOP })
    ).json()) as {
      choices: { text: string; finish_reason: string }[];
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    expect(plain.choices[0]!.text).toMatch(/^ /); // the space after "Assistant:" is not part of the reply
    expect(reply).toBe(plain.choices[0]!.text.slice(1));
    expect(choice.finish_reason).toBe(plain.choices[0]!.finish_reason);
    expect(data.usage).toMatchObject({
      prompt_tokens: plain.usage.prompt_tokens,
      completion_tokens: plain.usage.completion_tokens,
    });
  });

  it('streams the same reply, role first, usage in the last chunk', async () => {
    const stream = await openai.chat.completions.create({
      model,
      messages,
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    const pieces = chunks.flatMap((c) => c.choices.map((choice) => choice.delta.content ?? ''));
    expect(pieces.filter(Boolean).length).toBeGreaterThan(2); // token by token
    expect(pieces.join('')).toBe(reply);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: expect.any(Number), prompt_tokens: expect.any(Number) });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).not.toBeNull();
  });

  it('stops before a stop string and honours max_completion_tokens', async () => {
    const stop = reply.slice(3, 8);
    const stopped = await openai.chat.completions.create({
      model,
      messages,
      max_tokens: 12,
      temperature: 0,
      stop: [stop],
    });
    expect(stopped.choices[0]!.message.content).toBe(reply.slice(0, reply.indexOf(stop)));
    expect(stopped.choices[0]!.finish_reason).toBe('stop');
    const short = await openai.chat.completions.create({ model, messages, max_completion_tokens: 3, temperature: 0 });
    expect(short.usage!.completion_tokens).toBe(3);
    expect(short.choices[0]!.finish_reason).toBe('length');
  });

  it('reproduces a sampled reply from its seed', async () => {
    const ask = () => openai.chat.completions.create({ model, messages, max_tokens: 8, temperature: 1, seed: 42 });
    const [a, b] = [await ask(), await ask()];
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content);
    expect((a as unknown as { deciserve: { seed: number } }).deciserve.seed).toBe(42);
  });

  it('refuses what it cannot do with a 400 OpenAI error, before any inference', async () => {
    const chat = (body: Record<string, unknown>) => post(edge, '/v1/chat/completions', { model, messages, ...body });
    await expectError(await chat({ messages: [] }), 400, 'invalid_value');
    await expectError(
      await chat({ messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] }),
      400,
      'invalid_value',
    );
    await expectError(
      await chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] }] }),
      400,
      'invalid_value',
    );
    await expectError(await chat({ stop: ['a', 'b', 'c', 'd'] }), 400, 'value_too_large');
    await expectError(await chat({ max_tokens: 4, max_completion_tokens: 5 }), 400, 'invalid_value');
    await expectError(await chat({ n: 2 }), 400, 'invalid_value');
    await expectError(await chat({ tools: [] }), 400, 'unknown_parameter');
    await expectError(await chat({ model: 'gpt-4o' }), 404, 'model_not_found');
  });
});
