/** Vite turns CSS imports into stylesheets. */
declare module '*.css';
