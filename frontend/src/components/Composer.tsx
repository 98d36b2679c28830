// The text box, in the floating bar where a thumb reaches it: Enter sends, Shift+Enter starts a new line (and
// nothing is sent while an input method is still composing a word).
import { useId, type FormEvent, type KeyboardEvent, type RefObject } from "react";

interface Props {
  value: string;
  onChange: (value: string) => void;
  /** Sends the message; false keeps it in the box (nothing could take it yet). */
  onSend: (text: string) => boolean;
  input: RefObject<HTMLTextAreaElement | null>;
}

export function Composer({ value, onChange, onSend, input }: Props) {
  const id = useId();

  const send = () => {
    if (!value.trim()) return;
    if (onSend(value)) onChange("");
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    send();
  };
  const keyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key !== "Enter" || event.shiftKey || event.nativeEvent.isComposing) return;
    event.preventDefault();
    send();
  };

  return (
    <form className="composer" aria-label="Type to the agent" onSubmit={submit}>
      <label htmlFor={id} className="visually-hidden">Message</label>
      <textarea id={id} ref={input} rows={1} value={value} placeholder="Ask about a picture…" enterKeyHint="send"
                autoComplete="off" onChange={(event) => onChange(event.target.value)} onKeyDown={keyDown} />
      <button type="submit" className="control control-send">Send</button>
    </form>
  );
}
