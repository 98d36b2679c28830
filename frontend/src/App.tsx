import { ConversationProvider } from "@elevenlabs/react";

import type { Transport } from "./lib/api";
import { VoicePage } from "./components/VoicePage";

function transportFromLocation(): Transport {
  return new URLSearchParams(window.location.search).get("transport") === "webrtc" ? "webrtc" : "websocket";
}

export function App({ transport = transportFromLocation() }: { transport?: Transport }) {
  return (
    <ConversationProvider>
      <VoicePage transport={transport} />
    </ConversationProvider>
  );
}
