// estrom live view: reader login (issue 15). Loaded before app.js, which asks
// window.estromLogin for its connection options and tells it about joins and
// refusals; everything about tokens lives here.
//
// The token is asked for once and kept in this browser's localStorage; the
// router checks it by WAMP ticket authentication (the reader's name becomes
// the session's authid). Without a token the page joins anonymously.
(function () {
  "use strict";

  const KEY = "estrom.token";
  const stored = () => { try { return localStorage.getItem(KEY) || ""; } catch (e) { return ""; } };
  const keep = (t) => { try { t ? localStorage.setItem(KEY, t) : localStorage.removeItem(KEY); } catch (e) { /* private mode */ } };

  function button() {
    let b = document.getElementById("login");
    if (!b) {
      b = document.createElement("button");
      b.id = "login";
      b.type = "button";
      b.className = "login";
      const top = document.querySelector("header.top");
      if (top) top.appendChild(b);
    }
    return b;
  }

  function render(who) {
    const b = button();
    b.dataset.who = who || "";
    b.textContent = who ? "reader: " + who + " · log out" : "log in with a token";
    b.title = who ? "forget the token kept in this browser" : "read as a named reader";
  }

  function login() {
    const token = window.prompt("Reader token (kept in this browser):", "");
    if (token && token.trim()) { keep(token.trim()); location.reload(); }
  }

  function logout() { keep(""); location.reload(); }

  window.estromLogin = {
    // autobahn.Connection options: ticket authentication with the kept token, else anonymous.
    options: function () {
      const token = stored();
      if (!token) return {};
      return {
        authmethods: ["ticket"],
        onchallenge: function (_session, method) {
          if (method !== "ticket") throw new Error("unexpected authentication method " + method);
          return token;
        },
      };
    },
    // After every join, with the WELCOME details: who the router says we are.
    joined: function (details) {
      render(stored() && details ? details.authid : "");
      button().onclick = stored() ? logout : login;
    },
    // The router refused the join: a token it does not know. Forget it, say so.
    refused: function (details) {
      const why = details && (details.reason || details.message);
      if (!stored() || !why || !/authentication|not_authorized|no_such_principal|cannot_authenticate/.test(String(why))) return false;
      keep("");
      const b = button();
      b.textContent = "token refused · log in again";
      b.dataset.who = "";
      b.onclick = login;
      return true;
    },
  };
  render("");
  button().onclick = login;
})();
