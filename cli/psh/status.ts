/** `psh status` and `psh logout`. */
import { stringOption, type Invocation } from '../command.ts';
import { outputFormat, printData } from '../output.ts';
import { listProfiles, loadProfile, removeProfile } from './profile.ts';

export async function status(invocation: Invocation): Promise<number> {
  const profile = await loadProfile(stringOption(invocation, 'proxy'));
  const expired = Date.parse(profile.expires) <= Date.now();
  const data = { proxy: profile.proxy, user: profile.username, roles: profile.roles, logins: profile.logins, expires: profile.expires, valid: !expired };
  printData(outputFormat(invocation.options.format), data, (d) =>
    `> Profile: ${d.proxy}\n  User:    ${d.user}\n  Roles:   ${d.roles.join(', ')}\n  Logins:  ${d.logins.join(', ') || '(none)'}\n  Valid:   ${d.valid ? `until ${d.expires}` : `EXPIRED at ${d.expires}; run psh login --proxy ${d.proxy}`}\n`,
  );
  return expired ? 1 : 0;
}

export async function logout(invocation: Invocation): Promise<number> {
  const proxy = stringOption(invocation, 'proxy');
  const profiles = proxy ? [await loadProfile(proxy)] : await listProfiles();
  for (const profile of profiles) {
    await removeProfile(profile.proxy);
    process.stdout.write(`Logged out of ${profile.proxy} (keys and certificates deleted)\n`);
  }
  if (profiles.length === 0) process.stdout.write('not logged in anywhere\n');
  return 0;
}
