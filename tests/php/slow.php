<?php
// Sleeps ?ms=N milliseconds, then answers; with &done=/path it then creates that file, so a test
// can tell the script ran to its end. PHP stops a script whose client went away at its next
// flush (ignore_user_abort is off), so the file appears only if someone still reads the answer.
usleep((int) ($_GET['ms'] ?? 0) * 1000);
echo "slept\n";
flush();
if (!empty($_GET['done'])) {
    touch($_GET['done']);
}
