import type { ComponentChildren } from 'preact';
import { onLinkClick } from '../router.ts';

/** An anchor that navigates inside the app. */
export function Link(props: { href: string; children: ComponentChildren; current?: boolean; class?: string; label?: string }) {
  return (
    <a href={props.href} class={props.class} aria-current={props.current ? 'page' : undefined} aria-label={props.label} onClick={(e) => onLinkClick(e, props.href)}>
      {props.children}
    </a>
  );
}
