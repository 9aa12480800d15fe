/**
 * The operator dashboard: takes the token from the URL once, then routes
 * between the home page, a group and a device. One group session (live
 * socket + store) stays open while the operator moves between a group's
 * overview and its devices.
 */
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { interceptLinks, onNavigate, parseRoute, type Route } from "./router.ts";
import { GroupSession } from "./session.ts";
import { fetchGroups } from "./api.ts";
import { captureTokenFromUrl, clearToken, getToken, getTokenGroup, keepCurrentToken, pendingLinkToken, setTokenGroup, useLinkToken } from "./token.ts";
import { h } from "./util/dom.ts";
import { rememberGroup } from "./util/recent.ts";
import { signInView, topBar } from "./views/chrome.ts";
import { mountDevice } from "./views/device.ts";
import { mountGroup } from "./views/group.ts";
import { mountHome } from "./views/home.ts";
import { linkTokenNotice } from "./views/link-token.ts";

captureTokenFromUrl();

const app = document.getElementById("app");
if (!app) throw new Error("index.html has no #app");
const root: HTMLElement = app;

let session: GroupSession | null = null;
let dispose: (() => void) | null = null;
/** After "Sign out", the sign-in message stays up until a token is entered. */
let signedOut = false;

function closeSession(): void {
  session?.stop();
  session = null;
}

function signOut(): void {
  clearToken();
  closeSession();
  signedOut = true;
  render();
}

function showSignIn(message: string): void {
  dispose?.();
  dispose = null;
  closeSession();
  document.title = "Sign in · Telemetry Hub";
  root.replaceChildren(
    topBar([], null),
    signInView(message, () => {
      signedOut = false;
      render();
    }),
  );
}

function openSession(group: string): GroupSession {
  if (session && session.group === group) return session;
  closeSession();
  const s = new GroupSession(group, {
    onSignIn: (message) => {
      if (session !== s) return;
      // A token that opened another group but not this one is a group token.
      const scoped = getTokenGroup();
      showSignIn(scoped !== null && scoped !== group ? `${message} This token opens group "${scoped}".` : message);
    },
  });
  session = s;
  s.start();
  // Remember the group once the hub has answered with data for it (a typo is not remembered).
  const unsubscribe = s.store.subscribe((changes) => {
    if (!changes.has("devices") || s.store.source === "none") return;
    unsubscribe();
    rememberGroup(group);
    void learnTokenGroup(group);
  });
  return s;
}

/**
 * A token that opened `group` but may not list the hub's groups is that
 * group's token: `/` then goes straight here, without asking the hub about
 * other groups (which would create them).
 */
async function learnTokenGroup(group: string): Promise<void> {
  if (getToken() === null || getTokenGroup() !== null) return;
  try {
    if ((await fetchGroups()) === null) setTokenGroup(group);
  } catch {
    // unreachable hub: learn it another time
  }
}

function render(): void {
  dispose?.();
  dispose = null;
  const route: Route = parseRoute(window.location.pathname);
  if (signedOut) {
    showSignIn("You are signed out.");
    return;
  }
  // Without a token the page still tries: behind Cloudflare Access the
  // browser's Access cookie authenticates it (docs/security.md). A 401 then
  // brings up the sign-in message.
  switch (route.name) {
    case "home":
      closeSession();
      document.title = "Groups · Telemetry Hub";
      dispose = mountHome(root, { signOut, rerender: render });
      break;
    case "group": {
      document.title = `${route.group} · Telemetry Hub`;
      dispose = mountGroup(root, openSession(route.group), { signOut });
      break;
    }
    case "device":
      document.title = `${route.device} · ${route.group} · Telemetry Hub`;
      dispose = mountDevice(root, openSession(route.group), route.device, { signOut });
      break;
    case "not-found":
      closeSession();
      document.title = "Not found · Telemetry Hub";
      root.replaceChildren(
        topBar([], signOut),
        h("main", { class: "page page-narrow" }, h("section", { class: "card" }, h("h1", null, "No such page"), h("p", null, "Group and device names are 1 to 64 letters, digits, '_', '.' or '-'. "), h("a", { href: "/" }, "Go to the groups"))),
      );
      break;
  }
}

interceptLinks(document);
onNavigate(render);
render();
if (pendingLinkToken() !== null) {
  root.before(
    linkTokenNotice({
      currentGroup: getTokenGroup(),
      useLink: () => {
        useLinkToken();
        // Everything open was opened as the previous token: start over as the new one.
        closeSession();
        signedOut = false;
        render();
      },
      keepCurrent: keepCurrentToken,
    }),
  );
}
