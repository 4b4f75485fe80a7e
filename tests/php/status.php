<?php
// A custom status line, custom headers and three distinct cookies.
header('Status: 418 I\'m a teapot');
header('X-Custom: brewed');
header('X-Multi: one');
header('X-Multi: two', false);
header('Set-Cookie: a=1; Path=/', false);
header('Set-Cookie: b=2; Path=/; HttpOnly', false);
header('Set-Cookie: c=3; Max-Age=60', false);
echo "short and stout\n";
