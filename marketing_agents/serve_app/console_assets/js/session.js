// The signed-in key and who it is, for this tab only: sessionStorage (never localStorage, a cookie or
// a URL), so that closing the tab or signing out forgets the key.

const KEY = "mas.console.key";
const WHO = "mas.console.who";

export function currentKey() {
  return sessionStorage.getItem(KEY);
}

export function currentWho() {
  const raw = sessionStorage.getItem(WHO);
  return raw ? JSON.parse(raw) : null;
}

export function remember(key, who) {
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(WHO, JSON.stringify(who));
}

export function forget() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(WHO);
}
