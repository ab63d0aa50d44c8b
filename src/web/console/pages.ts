import { escapeHtml } from "../../shared/html";

/** The console's sign-in page, rendered on the server (no script needed to sign in; text is HTML-escaped). */

export function signInPage(opts: { error?: string }): string {
  const error = opts.error
    ? `<p class="form-error" role="alert" id="signin-error">${escapeHtml(opts.error)}</p>`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Business console</title>
<link rel="icon" href="/console/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/assets/console.css">
</head>
<body class="signin">
<main class="signin-card">
  <h1><span class="logo" aria-hidden="true"></span>Business console</h1>
  <p>Sign in with an admin key: the deployment's <code>ADMIN_API_KEY</code>, or one of your tenant's API keys with the <code>admin</code> or <code>read</code> scope.</p>
  ${error}
  <form method="post" action="/console/login">
    <label for="key">Admin key</label>
    <input id="key" name="key" type="password" required autocomplete="off" spellcheck="false" autofocus${opts.error ? ' aria-describedby="signin-error" aria-invalid="true"' : ""}>
    <button type="submit">Sign in</button>
  </form>
</main>
</body>
</html>
`;
}
