import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { App } from "../src/App";
import { VOICE_AVAILABLE_KEY } from "../src/lib/settings";
import {
  installApi, installMediaCapture, installMicrophone, installXhr, SESSION, type SentUpload, uploaded,
} from "./browserFakes";
import { resetConversations, started, startSession } from "./fakeConversation";
import { renderPage } from "./page";

vi.mock("@elevenlabs/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("@elevenlabs/client")>()),
  Conversation: { startSession: (options: Record<string, unknown>) => startSession(options) },
}));

let uploads: SentUpload[];
let api: ReturnType<typeof installApi>;

beforeEach(() => {
  resetConversations();
  installMicrophone("granted");
  api = installApi();
  uploads = installXhr();
  let next = 0;
  vi.stubGlobal("URL", Object.assign(URL, {
    createObjectURL: vi.fn(() => `blob:preview-${next++}`),
    revokeObjectURL: vi.fn(),
  }));
  localStorage.clear();
  localStorage.setItem(VOICE_AVAILABLE_KEY, "true"); // this server had voice last time: Start is there at once
});
afterEach(() => vi.unstubAllGlobals());

function photo(name = "bike.jpg", type = "image/jpeg") {
  return new File([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])], name, { type });
}


async function connected(conversation = 0) {
  await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
  await waitFor(() => expect(startSession).toHaveBeenCalledTimes(conversation + 1));
  act(() => started[conversation].connect());
}

async function renderConnected() {
  const page = renderPage();
  await connected();
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

/** Answers the upload at `index` (once it has been sent) with a 201. */
async function answer(index: number, imageId = `img${index}`) {
  await waitFor(() => expect(uploads.length).toBeGreaterThan(index));
  await act(async () => uploaded(uploads[index], imageId));
}

const picker = () => screen.getByLabelText("Choose pictures") as HTMLInputElement;
const shared = () => within(screen.getByRole("list", { name: "Shared pictures" }));
const tiles = () => shared().getAllByRole("listitem");
const fileNames = (sent: SentUpload[]) => sent.map((upload) => (upload.form.get("file") as File).name);

describe("sharing pictures", () => {
  it("uploads a chosen picture with the session id and upload token, showing progress then sent", async () => {
    await renderConnected();
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
    act(() => uploaded(upload, "img1"));
    await waitFor(() => expect(tiles()[0]).toHaveAttribute("data-state", "uploaded"));
    // Sent is not seen: the agent has not answered a turn since.
    expect(tiles()[0]).toHaveAttribute("data-seen", "false");
    expect(tiles()[0]).toHaveTextContent("Sent: sent, the agent has not looked at it yet");
  });

  it("takes several pictures, by picker, drop and paste, and sends them one after another in order", async () => {
    await renderConnected();
    await userEvent.upload(picker(), [photo("one.jpg"), photo("two.png", "image/png")]);
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [photo("three.webp", "image/webp")] } });
    paste([photo("image.png", "image/png")]);
    expect(shared().getAllByRole("img")).toHaveLength(4);
    for (let index = 0; index < 4; index++) {
      await waitFor(() => expect(uploads).toHaveLength(index + 1));
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(uploads).toHaveLength(index + 1); // the next goes only once this one is in
      await answer(index);
    }
    expect(fileNames(uploads)).toEqual(["one.jpg", "two.png", "three.webp", "image.png"]);
    await waitFor(() => expect(tiles().map((tile) => tile.dataset.state)).toEqual(
      ["uploaded", "uploaded", "uploaded", "uploaded"]));
  });

  it("takes a pasted file without a type, as it does a picked or dropped one", async () => {
    await renderConnected();
    expect(paste([photo("IMG_0001", "")]).defaultPrevented).toBe(true);
    await waitFor(() => expect(uploads).toHaveLength(1));
    expect((uploads[0].form.get("file") as File).name).toBe("IMG_0001");
    expect(shared().getByRole("img", { name: "IMG_0001" })).toBeInTheDocument();
  });

  it("leaves a paste without pictures to the page, so pasting text into a field still works", async () => {
    await renderConnected();
    expect(paste([]).defaultPrevented).toBe(false);
    expect(paste([new File(["hello"], "notes.txt", { type: "text/plain" })]).defaultPrevented).toBe(false);
    expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument();
    expect(uploads).toHaveLength(0);
  });

  it("takes a drop anywhere on the page, so a missed drop never opens the file instead", async () => {
    await renderConnected();
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

  it("offers the phone camera, and HEIC in both pickers", () => {
    render(<App transport="websocket" />);
    const camera = screen.getByLabelText("Take a photo");
    expect(camera).toHaveAttribute("capture", "environment");
    expect(camera.getAttribute("accept")).toBe("image/*,.heic,.heif");
    expect(picker().getAttribute("accept")).toBe("image/*,.heic,.heif");
  });

  it("shows the server's reason when an upload is refused, and the picture can be removed", async () => {
    await renderConnected();
    await userEvent.upload(picker(), photo("huge.jpg"));
    await waitFor(() => expect(uploads).toHaveLength(1));
    act(() => uploads[0].respond(413, { error: { message: "The image is larger than 10 MB.", type: "invalid_request_error" } }));
    expect(await screen.findByRole("alert")).toHaveTextContent("huge.jpg: The image is larger than 10 MB.");
    expect(tiles()[0]).toHaveAttribute("data-state", "failed");
    expect(tiles()[0]).toHaveTextContent("Not sent");
    await userEvent.click(shared().getByRole("button", { name: "Remove picture huge.jpg" }));
    expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument();
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(api.calls.filter((call) => call.method === "DELETE")).toHaveLength(0); // never on the server
  });

  it("explains a status without a JSON body in words", async () => {
    await renderConnected();
    await userEvent.upload(picker(), photo("cat.jpg"));
    await waitFor(() => expect(uploads).toHaveLength(1));
    act(() => uploads[0].respond(503, "<html>Service Unavailable</html>"));
    expect(await screen.findByRole("alert")).toHaveTextContent("The server is busy or restarting");
  });

  it("refuses a file that is not a picture without sending it or keeping it", async () => {
    await renderConnected();
    fireEvent.drop(screen.getByTestId("dropzone"), {
      dataTransfer: { files: [new File(["hello"], "notes.txt", { type: "text/plain" })] },
    });
    expect(await screen.findByRole("alert")).toHaveTextContent("notes.txt is not a picture");
    expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument();
    expect(uploads).toHaveLength(0);
  });

  it("holds pictures added before the conversation and sends them once it starts", async () => {
    renderPage();
    await userEvent.upload(picker(), photo("early.jpg"));
    expect(tiles()[0]).toHaveAttribute("data-state", "waiting");
    expect(tiles()[0]).toHaveTextContent("Waiting: sent when the conversation starts");
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

  it("leaving the page cancels the uploads under way and releases every preview", async () => {
    const page = await renderConnected();
    await userEvent.upload(picker(), [photo("sent.jpg"), photo("sending.jpg")]);
    await answer(0);
    await waitFor(() => expect(uploads).toHaveLength(2));
    page.unmount();
    expect(uploads[0].aborted).toBe(false);
    expect(uploads[1].aborted).toBe(true);
    expect(URL.revokeObjectURL).toHaveBeenCalledWith("blob:preview-0");
    expect(URL.revokeObjectURL).toHaveBeenCalledWith("blob:preview-1");
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(uploads).toHaveLength(2);
  });
});

describe("pictures outlive a conversation", () => {
  it("End → Start: the new session gets every picture again, in order, and none is seen yet", async () => {
    api = installApi({ sessions: [SESSION, { ...SESSION, session_id: "sess_second", upload_token: "tok_second" }] });
    await renderConnected();
    await userEvent.upload(picker(), [photo("one.jpg"), photo("two.jpg")]);
    await answer(0);
    await answer(1);
    await waitFor(() => expect(tiles()[1]).toHaveAttribute("data-state", "uploaded"));

    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    expect(tiles().map((tile) => tile.dataset.state)).toEqual(["waiting", "waiting"]);
    await userEvent.upload(picker(), photo("between.jpg"));
    expect(uploads).toHaveLength(2); // an ended conversation takes no more pictures

    await connected(1);
    await answer(2);
    await answer(3);
    await answer(4);
    const again = uploads.slice(2);
    expect(fileNames(again)).toEqual(["one.jpg", "two.jpg", "between.jpg"]);
    expect(again.map((upload) => upload.form.get("session_id"))).toEqual(["sess_second", "sess_second", "sess_second"]);
    expect(again.map((upload) => upload.headers["X-Upload-Token"])).toEqual(["tok_second", "tok_second", "tok_second"]);
    await waitFor(() => expect(tiles().map((tile) => tile.dataset.state)).toEqual(["uploaded", "uploaded", "uploaded"]));
    expect(tiles().map((tile) => tile.dataset.seen)).toEqual(["false", "false", "false"]);
    expect(URL.revokeObjectURL).not.toHaveBeenCalled(); // the thumbnails are the same pictures
  });

  it("Try again after a dropped connection re-attaches the pictures to the new session", async () => {
    api = installApi({ sessions: [SESSION, { ...SESSION, session_id: "sess_second" }] });
    await renderConnected();
    await userEvent.upload(picker(), photo("kept.jpg"));
    await answer(0);
    act(() => started[0].dropWithError("Connection closed unexpectedly"));
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(2));
    act(() => started[1].connect());
    await waitFor(() => expect(uploads).toHaveLength(2));
    expect(uploads[1].form.get("session_id")).toBe("sess_second");
    expect((uploads[1].form.get("file") as File).name).toBe("kept.jpg");
  });
});

describe("removing a picture", () => {
  it("deletes it on the server with the session and upload token, then the thumbnail goes", async () => {
    await renderConnected();
    await userEvent.upload(picker(), [photo("keep.jpg"), photo("drop.jpg")]);
    await answer(0, "img_keep");
    await answer(1, "img_drop");
    await waitFor(() => expect(tiles()[1]).toHaveAttribute("data-state", "uploaded"));
    expect(screen.getByText("2 of 8 pictures")).toBeInTheDocument();

    await userEvent.click(shared().getByRole("button", { name: "Remove picture drop.jpg" }));
    await waitFor(() => expect(shared().queryByRole("img", { name: "drop.jpg" })).not.toBeInTheDocument());
    const [deleted] = api.calls.filter((call) => call.method === "DELETE");
    expect(deleted.url).toBe(`/v1/images/img_drop?session_id=${SESSION.session_id}`);
    expect(deleted.headers["x-upload-token"]).toBe(SESSION.upload_token);
    expect(shared().getByRole("img", { name: "keep.jpg" })).toBeInTheDocument();
    expect(screen.getByText("1 of 8 pictures")).toBeInTheDocument();
    expect(URL.revokeObjectURL).toHaveBeenCalledWith("blob:preview-1");
  });

  it("treats a picture the server no longer has (404) as removed", async () => {
    api = installApi({ onDelete: () => new Response(JSON.stringify({ error: { message: "No such image." } }),
                                                     { status: 404 }) });
    await renderConnected();
    await userEvent.upload(picker(), photo("gone.jpg"));
    await answer(0);
    await waitFor(() => expect(tiles()[0]).toHaveAttribute("data-state", "uploaded"));
    await userEvent.click(shared().getByRole("button", { name: "Remove picture gone.jpg" }));
    await waitFor(() => expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument());
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("keeps the picture and says so when the server could not remove it", async () => {
    api = installApi({ onDelete: () => new Response("<html>bad gateway</html>", { status: 503 }) });
    await renderConnected();
    await userEvent.upload(picker(), photo("stuck.jpg"));
    await answer(0);
    await waitFor(() => expect(tiles()[0]).toHaveAttribute("data-state", "uploaded"));
    await userEvent.click(shared().getByRole("button", { name: "Remove picture stuck.jpg" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("stuck.jpg: The server is busy or restarting");
    expect(tiles()[0]).toHaveAttribute("data-state", "uploaded");
  });

  it("removing a picture still uploading stops the upload and sends the next", async () => {
    await renderConnected();
    await userEvent.upload(picker(), [photo("first.jpg"), photo("second.jpg")]);
    await waitFor(() => expect(uploads).toHaveLength(1));
    await userEvent.click(shared().getByRole("button", { name: "Remove picture first.jpg" }));
    expect(uploads[0].aborted).toBe(true);
    await waitFor(() => expect(uploads).toHaveLength(2));
    expect((uploads[1].form.get("file") as File).name).toBe("second.jpg");
    expect(api.calls.filter((call) => call.method === "DELETE")).toHaveLength(0);
  });
});

describe("removing a picture whose bytes are all sent", () => {
  it("lets the server finish storing it, then deletes it: it never stays with the agent", async () => {
    await renderConnected();
    await userEvent.upload(picker(), photo("oops.jpg"));
    await waitFor(() => expect(uploads).toHaveLength(1));
    act(() => uploads[0].progress(100, 100));
    await waitFor(() => expect(tiles()[0]).toHaveAttribute("data-state", "uploading"));
    await userEvent.click(shared().getByRole("button", { name: "Remove picture oops.jpg" }));
    expect(uploads[0].aborted).toBe(false);
    expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument();
    await answer(0, "img_oops");
    await waitFor(() => expect(api.calls.filter((call) => call.method === "DELETE")).toHaveLength(1));
    const [deleted] = api.calls.filter((call) => call.method === "DELETE");
    expect(deleted.url).toBe(`/v1/images/img_oops?session_id=${SESSION.session_id}`);
  });
});

describe("the per-conversation cap", () => {
  it("says how many pictures fit before the limit is reached, and refuses the 9th up front", async () => {
    await renderConnected();
    expect(screen.getByText("0 of 8 pictures")).toBeInTheDocument();
    await userEvent.upload(picker(), [1, 2, 3].map((n) => photo(`p${n}.jpg`)));
    expect(screen.getByText("3 of 8 pictures")).toBeInTheDocument();
    await userEvent.upload(picker(), [4, 5, 6, 7, 8, 9, 10].map((n) => photo(`p${n}.jpg`)));
    expect(screen.getByText("8 of 8 pictures")).toBeInTheDocument();
    expect(screen.getByRole("alert")).toHaveTextContent(
      "A conversation holds up to 8 pictures, so 2 pictures were not added. Remove one to make room.");
    expect(tiles()).toHaveLength(8);
    for (let index = 0; index < 8; index++) await answer(index);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(fileNames(uploads)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((n) => `p${n}.jpg`)); // never a 9th
  });

  it("uses the server's limit when the session names one", async () => {
    api = installApi({ sessions: [{ ...SESSION, max_images: 2 }] });
    await renderConnected();
    await userEvent.upload(picker(), [photo("a.jpg"), photo("b.jpg"), photo("c.jpg")]);
    expect(screen.getByText("2 of 2 pictures")).toBeInTheDocument();
    expect(screen.getByRole("alert")).toHaveTextContent("1 picture was not added");
  });

  it("words the server's own refusal without naming anything technical", async () => {
    await renderConnected();
    await userEvent.upload(picker(), photo("extra.jpg"));
    await waitFor(() => expect(uploads).toHaveLength(1));
    act(() => uploads[0].respond(400, { error: { message: "This conversation already has 8 images, the most it can hold.",
                                                 code: "too_many_images", type: "invalid_request_error" } }));
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "extra.jpg: This conversation already holds as many pictures as it can. Remove one to share another.");
  });
});

describe("HEIC from an iPhone or a Mac", () => {
  it("is taken, sent as it is, shown as a placeholder, then as the server's JPEG", async () => {
    await renderConnected();
    const heic = new File([new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70])], "IMG_4242.HEIC",
                          { type: "image/heic" });
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [heic] } });
    await waitFor(() => expect(uploads).toHaveLength(1));
    expect(uploads[0].form.get("file")).toBeInstanceOf(File);
    expect((uploads[0].form.get("file") as File).name).toBe("IMG_4242.HEIC"); // not redrawn: the server converts it
    expect(URL.createObjectURL).not.toHaveBeenCalled(); // a blob: URL of a HEIC is a broken image
    const placeholder = shared().getByRole("img", { name: "IMG_4242.HEIC" });
    expect(placeholder.tagName).toBe("DIV");
    act(() => uploaded(uploads[0], "img_heic", "/v1/images/img_heic.jpg?expires=9&sig=abc"));
    await waitFor(() => expect(shared().getByRole("img", { name: "IMG_4242.HEIC" }).tagName).toBe("IMG"));
    expect(shared().getByRole("img", { name: "IMG_4242.HEIC" }))
      .toHaveAttribute("src", "/v1/images/img_heic.jpg?expires=9&sig=abc");
  });

  it("is recognised by its name when the system gives it no type", async () => {
    await renderConnected();
    await userEvent.upload(picker(), new File([new Uint8Array([1])], "photo.heif", { type: "" }));
    await waitFor(() => expect(uploads).toHaveLength(1));
    expect(shared().getByRole("img", { name: "photo.heif" }).tagName).toBe("DIV");
  });
});

describe("reacting to a picture at once", () => {
  it("says one thing for a batch, after the uploads' 201s, and the agent's answer makes them seen", async () => {
    await renderConnected();
    await userEvent.upload(picker(), [photo("one.jpg"), photo("two.jpg")]);
    await answer(0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(started[0].sendUserMessage).not.toHaveBeenCalled(); // the second is still on its way
    await answer(1);
    await waitFor(() => expect(started[0].sendUserMessage).toHaveBeenCalledTimes(1));
    expect(started[0].sendUserMessage).toHaveBeenCalledWith("I'm showing you 2 pictures.");
    const turns = screen.getAllByRole("listitem").filter((item) => item.dataset.role);
    expect(turns.map((turn) => turn.textContent)).toEqual(["YouI'm showing you 2 pictures."]);
    expect(screen.getByRole("status")).toHaveTextContent("Thinking");
    expect(tiles().map((tile) => tile.dataset.seen)).toEqual(["false", "false"]);

    act(() => started[0].say("agent", "A red bicycle and a green door."));
    expect(tiles().map((tile) => tile.dataset.seen)).toEqual(["true", "true"]);
    expect(tiles()[0]).toHaveTextContent("Seen: the agent can see it");
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(started[0].sendUserMessage).toHaveBeenCalledTimes(1);
  });

  it("one picture reads as one", async () => {
    await renderConnected();
    await userEvent.upload(picker(), photo());
    await answer(0);
    await waitFor(() => expect(started[0].sendUserMessage).toHaveBeenCalledWith("I'm showing you a picture."));
  });

  it("waits for the agent to finish speaking, then reacts", async () => {
    await renderConnected();
    act(() => started[0].mode("speaking"));
    await userEvent.upload(picker(), photo());
    await answer(0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(started[0].sendUserMessage).not.toHaveBeenCalled();
    act(() => started[0].mode("listening"));
    await waitFor(() => expect(started[0].sendUserMessage).toHaveBeenCalledTimes(1));
  });

  it("says nothing when the person speaks first: their own turn carries the picture", async () => {
    await renderConnected();
    act(() => started[0].mode("speaking"));
    await userEvent.upload(picker(), photo());
    await answer(0);
    act(() => started[0].say("user", "What is this?"));
    act(() => started[0].mode("listening"));
    act(() => started[0].say("agent", "A bicycle."));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(started[0].sendUserMessage).not.toHaveBeenCalled();
  });

  it("does nothing when the setting is off, and remembers the setting", async () => {
    const page = await renderConnected();
    const setting = screen.getByRole("checkbox", { name: "React to pictures" });
    expect(setting).toBeChecked();
    await userEvent.click(setting);
    await userEvent.upload(picker(), photo());
    await answer(0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(started[0].sendUserMessage).not.toHaveBeenCalled();
    page.unmount();
    render(<App transport="websocket" />);
    expect(screen.getByRole("checkbox", { name: "React to pictures" })).not.toBeChecked();
  });

  it("does not speak for pictures uploaded again to a new session, nor before one is live", async () => {
    api = installApi({ sessions: [SESSION, { ...SESSION, session_id: "sess_second" }] });
    renderPage();
    await userEvent.upload(picker(), photo("early.jpg"));
    await connected();
    await answer(0);
    // shared before the call: the agent reacts to it once the call is on
    await waitFor(() => expect(started[0].sendUserMessage).toHaveBeenCalledTimes(1));
    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    await connected(1);
    await answer(1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(started[1].sendUserMessage).not.toHaveBeenCalled();
  });
});

describe("camera and screen on a computer", () => {
  it("takes a photo from the camera: a preview, one frame, the camera off again", async () => {
    const capture = installMediaCapture();
    try {
      await renderConnected();
      await userEvent.click(screen.getByRole("button", { name: "Take a photo" }));
      const dialog = screen.getByRole("dialog", { name: "Take a photo" });
      const shutter = within(dialog).getByRole("button", { name: "Capture photo" });
      await waitFor(() => expect(shutter).toBeEnabled());
      await userEvent.click(shutter);
      expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
      expect(capture.stopped).toContain("camera");
      await waitFor(() => expect(uploads).toHaveLength(1));
      const sent = uploads[0].form.get("file") as File;
      expect(sent.name).toMatch(/^Photo \d\d\.\d\d\.\d\d\.jpg$/);
      expect(sent.type).toBe("image/jpeg");
      expect(await sent.text()).toBe("1600x900"); // one frame, drawn at most 1600 px wide
    } finally {
      capture.restore();
    }
  });

  it("Cancel closes the camera without a picture", async () => {
    const capture = installMediaCapture();
    try {
      renderPage();
      await userEvent.click(screen.getByRole("button", { name: "Take a photo" }));
      await userEvent.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Cancel" }));
      expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
      await waitFor(() => expect(capture.stopped).toContain("camera"));
      expect(screen.queryByRole("list", { name: "Shared pictures" })).not.toBeInTheDocument();
    } finally {
      capture.restore();
    }
  });

  it("shares one still of the screen and stops capturing at once", async () => {
    const capture = installMediaCapture();
    try {
      await renderConnected();
      await userEvent.click(screen.getByRole("button", { name: "Share screen" }));
      await waitFor(() => expect(uploads).toHaveLength(1));
      expect(capture.getDisplayMedia).toHaveBeenCalledTimes(1);
      expect(capture.stopped.filter((kind) => kind !== "microphone")).toEqual(["screen"]);
      expect((uploads[0].form.get("file") as File).name).toMatch(/^Screen .*\.jpg$/);
    } finally {
      capture.restore();
    }
  });
});
