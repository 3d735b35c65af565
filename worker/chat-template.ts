// The chat template of /v1/chat/completions. The shipped models are base models (no chat fine-tuning, no special
// tokens), so messages become plain text in the transcript form a base model continues most naturally:
//
//   System: <system or developer message>
//   User: <user message>
//   Assistant: <assistant message>
//   User: <user message>
//   Assistant:
//
// one line per message (its own newlines kept), in the order given, ending with "Assistant:" for the model to
// continue. Generation stops at TURN_STOP, where the model would start writing the user's next turn, and the single
// space the model writes after "Assistant:" is not part of the reply. Documented in worker/README.md.

export type ChatRole = 'system' | 'developer' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string | Array<{ type: 'text'; text: string }>;
}

const LABEL: Record<ChatRole, string> = { system: 'System', developer: 'System', user: 'User', assistant: 'Assistant' };

/** Where the model starts the next user turn: generation ends before it. */
export const TURN_STOP = '\nUser:';

export function messageText(message: ChatMessage): string {
  return typeof message.content === 'string' ? message.content : message.content.map((part) => part.text).join('');
}

export function renderChat(messages: ChatMessage[]): string {
  return messages.map((m) => `${LABEL[m.role]}: ${messageText(m)}\n`).join('') + 'Assistant:';
}

/** The reply without the space that follows "Assistant:" (streamed: only the first piece can start with it). */
export function replyText(generated: string): string {
  return generated.startsWith(' ') ? generated.slice(1) : generated;
}
