/** The one thing Postern reads from ssh2's cipher module (`postern version`); ssh2's types do not cover it. */
declare module 'ssh2/lib/protocol/crypto.js' {
  const crypto: { bindingAvailable: boolean };
  export default crypto;
}
