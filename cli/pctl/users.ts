/** `pctl users add | ls | rm | reset`. */
import { UsageError, stringOption, type Invocation } from '../command.ts';
import { outputFormat, printData, renderTable } from '../output.ts';
import { withAuth } from './connect.ts';

interface UserView {
  metadata: { name: string };
  spec: { roles: string[]; traits: Record<string, string[]> };
  status: { created: string; password_set: boolean; totp: boolean; locked_until?: string };
}

function listOption(invocation: Invocation, name: string): string[] {
  return (stringOption(invocation, name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

export async function usersAdd(invocation: Invocation): Promise<number> {
  const [name] = invocation.positionals;
  if (!name) throw new UsageError('name the user: pctl users add NAME --roles access');
  const roles = listOption(invocation, 'roles');
  if (roles.length === 0) throw new UsageError('--roles is required, e.g. --roles access or --roles editor,access');
  return withAuth(invocation, async ({ client }) => {
    const response = await client.createUser({
      name,
      roles,
      logins: listOption(invocation, 'logins'),
      traitsJson: stringOption(invocation, 'traits') ?? '',
    });
    const proxy = stringOption(invocation, 'proxy') ?? 'PROXY_HOST:3080';
    process.stdout.write(
      `User ${name} created with roles ${roles.join(', ')}.\n` +
        `Share this one-time sign-up token with them (it expires ${response.expires}):\n\n  ${response.signupToken}\n\n` +
        `They set a password with:\n  psh signup --proxy ${proxy} --token=${response.signupToken}\n`,
    );
    return 0;
  });
}

export async function usersList(invocation: Invocation): Promise<number> {
  return withAuth(invocation, async ({ client }) => {
    const users = JSON.parse((await client.getResources({ kind: 'user', name: '' })).resourcesJson) as UserView[];
    printData(outputFormat(invocation.options.format), users, (list) =>
      renderTable(
        ['USER', 'ROLES', 'LOGINS', 'PASSWORD', 'TOTP', 'LOCKED UNTIL'],
        list.map((u) => [
          u.metadata.name,
          u.spec.roles.join(','),
          (u.spec.traits.logins ?? []).join(','),
          u.status.password_set ? 'set' : 'pending sign-up',
          u.status.totp ? 'yes' : 'no',
          u.status.locked_until ?? '',
        ]),
        'no users yet; add one with: pctl users add NAME --roles access',
      ),
    );
    return 0;
  });
}

export async function usersRemove(invocation: Invocation): Promise<number> {
  const [name] = invocation.positionals;
  if (!name) throw new UsageError('name the user: pctl users rm NAME');
  return withAuth(invocation, async ({ client }) => {
    await client.deleteResource({ kind: 'user', name });
    process.stdout.write(`user ${name} deleted\n`);
    return 0;
  });
}

export async function usersReset(invocation: Invocation): Promise<number> {
  const [name] = invocation.positionals;
  if (!name) throw new UsageError('name the user: pctl users reset NAME');
  return withAuth(invocation, async ({ client }) => {
    const response = await client.resetUser({ name });
    process.stdout.write(
      `Password and second factor of ${name} will be reset when they use this one-time token (expires ${response.expires}):\n\n  ${response.resetToken}\n\n` +
        `They run: psh signup --proxy PROXY_HOST:3080 --token=${response.resetToken}\n`,
    );
    return 0;
  });
}
