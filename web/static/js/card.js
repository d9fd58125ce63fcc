// The citizen card: full screen with the screen kept awake (Fullscreen API, Screen Wake Lock where
// the browser has them), and a print button. Without this script the "full screen" link opens a
// page that is just the QR code, and the browser's Print command prints the card.

let wakeLock = null;

async function keepAwake() {
  if (!("wakeLock" in navigator) || document.visibilityState !== "visible") return;
  try {
    wakeLock = await navigator.wakeLock.request("screen");
  } catch {
    wakeLock = null; // refused (battery saver, permissions): the code still shows
  }
}

function letSleep() {
  if (wakeLock) wakeLock.release();
  wakeLock = null;
}

const card = document.getElementById("citizen-card");
const fullScreen = document.getElementById("card-full-screen");
if (card && fullScreen && document.fullscreenEnabled) {
  fullScreen.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      await card.requestFullscreen({ navigationUI: "hide" });
      await keepAwake();
    } catch {
      window.location.assign(fullScreen.href); // the page that is just the code
    }
  });
  document.addEventListener("fullscreenchange", () => {
    if (!document.fullscreenElement) letSleep();
  });
}

if (document.body.classList.contains("card-full")) {
  keepAwake();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") keepAwake();
  });
}

const print = document.getElementById("card-print");
if (print) {
  print.hidden = false;
  print.addEventListener("click", () => window.print());
}
