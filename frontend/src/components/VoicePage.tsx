import type { Transport } from "../lib/api";
import { useImageUploads } from "../lib/useImageUploads";
import { isLive, useVoiceSession } from "../lib/useVoiceSession";
import { ConnectionControls } from "./ConnectionControls";
import { ImagePanel } from "./ImagePanel";
import { StatusIndicator } from "./StatusIndicator";
import { Transcript } from "./Transcript";

export function VoicePage({ transport }: { transport: Transport }) {
  const voice = useVoiceSession(transport);
  const live = isLive(voice.status);
  // Pictures go to a conversation that is on; between conversations they wait for the next one.
  const uploads = useImageUploads(live ? voice.session : null);

  return (
    <div className="page">
      <header className="page-header">
        <h1>Glimpse</h1>
        <StatusIndicator status={voice.status} />
      </header>
      <main className="page-main">
        <ConnectionControls
          status={voice.status}
          error={voice.error}
          isMuted={voice.isMuted}
          onConnect={voice.connect}
          onDisconnect={voice.disconnect}
          onMutedChange={voice.setMuted}
        />
        <ImagePanel images={uploads.images} live={live} onFiles={uploads.addFiles} onDismiss={uploads.dismiss} />
        <Transcript entries={voice.transcript} agentSpeaking={voice.status === "speaking"} />
      </main>
    </div>
  );
}
