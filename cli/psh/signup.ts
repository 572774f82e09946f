/** `psh signup`: sets the password of an invited (or reset) account with its one-time token. */
import { stringOption, type Invocation } from '../command.ts';
import { callWebApi, parseProxyAddress } from '../../cluster/api/web-client.ts';
import { PosternError } from '../../protocols/errors.ts';
import { promptSecret } from './prompt.ts';
import { trustedCa } from './trust.ts';

export async function signup(invocation: Invocation): Promise<number> {
  const proxy = stringOption(invocation, 'proxy', true);
  const token = stringOption(invocation, 'token', true);
  const caPems = await trustedCa(proxy, stringOption(invocation, 'ca-pin'));
  const password = await promptSecret('New password (at least 12 characters): ');
  const again = await promptSecret('Repeat it: ');
  if (password !== again) throw new PosternError('PST_PASSWORD_MISMATCH', 'the two passwords differ; nothing was changed, run psh signup again');
  const response = await callWebApi<{ username: string }>(parseProxyAddress(proxy), 'POST', '/v1/signup', { caPems, body: { token, password } });
  process.stdout.write(`Password set for ${response.username}. Log in with: psh login --proxy ${proxy} --user ${response.username}\n`);
  return 0;
}
