// The page as the tests render it (StrictMode, as in development) and what they read from it.
import { render, screen } from "@testing-library/react";
import { StrictMode } from "react";

import { App } from "../src/App";

export function renderPage() {
  return render(
    <StrictMode>
      <App transport="websocket" />
    </StrictMode>,
  );
}

export const status = () => screen.getByRole("status");

/** The transcript as [role, text] pairs. */
export const turns = () => screen.queryAllByRole("listitem").filter((item) => item.dataset.role)
  .map((turn) => [turn.dataset.role, turn.querySelector(".turn-text")?.textContent]);
