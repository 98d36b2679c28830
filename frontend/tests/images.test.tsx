import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { StrictMode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { App } from "../src/App";
import { installFetch, installMicrophone, installXhr, SESSION, type SentUpload } from "./browserFakes";
import { resetConversations, started, startSession } from "./fakeConversation";

vi.mock("@elevenlabs/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("@elevenlabs/client")>()),
  Conversation: { startSession: (options: Record<string, unknown>) => startSession(options) },
}));

let uploads: SentUpload[];

beforeEach(() => {
  resetConversations();
  installMicrophone("granted");
  installFetch();
  uploads = installXhr();
  let next = 0;
  vi.stubGlobal("URL", Object.assign(URL, {
    createObjectURL: vi.fn(() => `blob:preview-${next++}`),
    revokeObjectURL: vi.fn(),
  }));
});
afterEach(() => vi.unstubAllGlobals());

function photo(name = "bike.jpg", type = "image/jpeg") {
  return new File([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])], name, { type });
}

async function connected() {
  const page = render(
    <StrictMode>
      <App transport="websocket" />
    </StrictMode>,
  );
  await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
  await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
  act(() => started[0].connect());
  return page;
}

/** Pastes onto the page as a browser does; the event tells whether the page took it. */
function paste(files: File[]) {
  const event = new Event("paste", { bubbles: true, cancelable: true }) as Event & { clipboardData: unknown };
  event.clipboardData = { files };
  act(() => {
    document.dispatchEvent(event);
  });
  return event;
}

const picker = () => screen.getByLabelText("Choose pictures") as HTMLInputElement;
const shared = () => within(screen.getByRole("list", { name: "Shared pictures" }));

describe("sharing pictures", () => {
  it("uploads a chosen picture with the session id and upload token, showing progress then done", async () => {
    await connected();
    await userEvent.upload(picker(), photo());
    await waitFor(() => expect(uploads).toHaveLength(1));
    const upload = uploads[0];
    expect(upload.url).toBe("/v1/images");
    expect(upload.headers["X-Upload-Token"]).toBe(SESSION.upload_token);
    expect(upload.form.get("session_id")).toBe(SESSION.session_id);
    expect((upload.form.get("file") as File).name).toBe("bike.jpg");

    const thumbnail = shared().getByRole("img", { name: "bike.jpg" });
    expect(thumbnail).toHaveAttribute("src", "blob:preview-0");
    act(() => upload.progress(40, 100));
    expect(shared().getByRole("progressbar", { name: "Uploading bike.jpg" })).toHaveAttribute("value", "40");
    act(() => upload.respond(201, { image_id: "img1", url: "/v1/images/img1?sig=x", session_id: SESSION.session_id,
                                    expires_at: 1 }));
    expect(await shared().findByText("Shared with the agent")).toBeInTheDocument();
  });

  it("takes several pictures, by picker, drop and paste", async () => {
    await connected();
    await userEvent.upload(picker(), [photo("one.jpg"), photo("two.png", "image/png")]);
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [photo("three.webp", "image/webp")] } });
    paste([photo("image.png", "image/png")]);
    await waitFor(() => expect(uploads).toHaveLength(4));
    expect(uploads.map((u) => (u.form.get("file") as File).name)).toEqual(["one.jpg", "two.png", "three.webp",
                                                                             "image.png"]);
    expect(shared().getAllByRole("img")).toHaveLength(4);
  });

  it("takes a pasted file without a type, as it does a picked or dropped one", async () => {
    await connected();
    expect(paste([photo("IMG_0001", "")]).defaultPrevented).toBe(true);
    await waitFor(() => expect(uploads).toHaveLength(1));
    expect((uploads[0].form.get("file") as File).name).toBe("IMG_0001");
    expect(shared().getByRole("img", { name: "IMG_0001" })).toBeInTheDocument();
  });

  it("leaves a paste without pictures to the page, so pasting text into a field still works", async () => {
    await connected();
    expect(paste([]).defaultPrevented).toBe(false);
    expect(paste([new File(["hello"], "notes.txt", { type: "text/plain" })]).defaultPrevented).toBe(false);
    expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument();
    expect(uploads).toHaveLength(0);
  });

  it("takes a drop anywhere on the page, so a missed drop never opens the file instead", async () => {
    await connected();
    const drop = new Event("drop", { bubbles: true, cancelable: true }) as Event & { dataTransfer: unknown };
    drop.dataTransfer = { files: [photo("missed.jpg")], types: ["Files"] };
    act(() => {
      screen.getByRole("heading", { name: "Transcript" }).dispatchEvent(drop);
    });
    expect(drop.defaultPrevented).toBe(true);
    await waitFor(() => expect(uploads).toHaveLength(1));
    expect((uploads[0].form.get("file") as File).name).toBe("missed.jpg");
  });

  it("shows where to drop while files are dragged over the page", async () => {
    render(<App transport="websocket" />);
    const enter = new Event("dragenter", { bubbles: true }) as Event & { dataTransfer: unknown };
    enter.dataTransfer = { types: ["Files"] };
    act(() => {
      document.body.dispatchEvent(enter);
    });
    expect(screen.getByTestId("dropzone")).toHaveClass("dropzone-active");
    expect(screen.getByText("Drop to share")).toBeInTheDocument();
    const leave = new Event("dragleave", { bubbles: true }) as Event & { dataTransfer: unknown };
    leave.dataTransfer = { types: ["Files"] };
    act(() => {
      document.body.dispatchEvent(leave);
    });
    expect(screen.getByTestId("dropzone")).not.toHaveClass("dropzone-active");
  });

  it("offers the phone camera", () => {
    render(<App transport="websocket" />);
    const camera = screen.getByLabelText("Take a photo");
    expect(camera).toHaveAttribute("capture", "environment");
    expect(camera).toHaveAttribute("accept", "image/*");
  });

  it("shows the server's reason when an upload is refused", async () => {
    await connected();
    await userEvent.upload(picker(), photo("huge.jpg"));
    await waitFor(() => expect(uploads).toHaveLength(1));
    act(() => uploads[0].respond(413, { error: { message: "The image is larger than 10 MB.", type: "invalid_request_error" } }));
    expect(await shared().findByRole("alert")).toHaveTextContent("The image is larger than 10 MB.");
    expect(shared().getByText("Not shared")).toBeInTheDocument();
    await userEvent.click(shared().getByRole("button", { name: "Dismiss huge.jpg" }));
    expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument();
  });

  it("explains a status without a JSON body in words", async () => {
    await connected();
    await userEvent.upload(picker(), photo("cat.jpg"));
    await waitFor(() => expect(uploads).toHaveLength(1));
    act(() => uploads[0].respond(503, "<html>Service Unavailable</html>"));
    expect(await shared().findByRole("alert")).toHaveTextContent("The server is busy or restarting");
  });

  it("refuses a file that is not an image without sending it", async () => {
    await connected();
    fireEvent.drop(screen.getByTestId("dropzone"), {
      dataTransfer: { files: [new File(["hello"], "notes.txt", { type: "text/plain" })] },
    });
    expect(await shared().findByRole("alert")).toHaveTextContent("notes.txt is not an image");
    expect(uploads).toHaveLength(0);
  });

  it("holds pictures added before the conversation and sends them once it starts", async () => {
    render(
      <StrictMode>
        <App transport="websocket" />
      </StrictMode>,
    );
    await userEvent.upload(picker(), photo("early.jpg"));
    expect(shared().getByText("Waiting for the conversation")).toBeInTheDocument();
    expect(uploads).toHaveLength(0);
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    expect(uploads).toHaveLength(0); // not before the conversation is actually on
    act(() => started[0].connect());
    await waitFor(() => expect(uploads).toHaveLength(1));
    expect(uploads[0].form.get("session_id")).toBe(SESSION.session_id);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(uploads).toHaveLength(1); // StrictMode's double effects upload it once
  });

  it("a new conversation starts with no pictures from the last one", async () => {
    await connected();
    await userEvent.upload(picker(), photo("old.jpg"));
    await waitFor(() => expect(uploads).toHaveLength(1));
    act(() => uploads[0].respond(201, { image_id: "i", url: "u", session_id: SESSION.session_id, expires_at: 1 }));
    await shared().findByText("Shared with the agent");
    installFetch(async () => new Response(JSON.stringify({ ...SESSION, session_id: "sess_second" })));
    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    await userEvent.upload(picker(), photo("between.jpg"));
    expect(uploads).toHaveLength(1); // an ended conversation takes no more pictures
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(2));
    act(() => started[1].connect());
    await waitFor(() => expect(uploads).toHaveLength(2));
    expect(uploads[1].form.get("session_id")).toBe("sess_second");
    expect(shared().getByRole("img", { name: "between.jpg" })).toBeInTheDocument();
    await waitFor(() => expect(shared().queryByRole("img", { name: "old.jpg" })).not.toBeInTheDocument());
    expect(URL.revokeObjectURL).toHaveBeenCalledWith("blob:preview-0");
  });

  it("leaving the page cancels the uploads under way and releases every preview", async () => {
    const page = await connected();
    await userEvent.upload(picker(), [photo("sent.jpg"), photo("sending.jpg")]);
    await waitFor(() => expect(uploads).toHaveLength(2));
    act(() => uploads[0].respond(201, { image_id: "i", url: "u", session_id: SESSION.session_id, expires_at: 1 }));
    await shared().findByText("Shared with the agent");
    page.unmount();
    expect(uploads[0].aborted).toBe(false);
    expect(uploads[1].aborted).toBe(true);
    expect(URL.revokeObjectURL).toHaveBeenCalledWith("blob:preview-0");
    expect(URL.revokeObjectURL).toHaveBeenCalledWith("blob:preview-1");
  });
});
