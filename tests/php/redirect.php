<?php
// `Location:` only (PHP turns it into a 302), or with ?code=N that status.
$to = $_GET['to'] ?? '/elsewhere?from=redirect';
if (isset($_GET['code'])) {
    header('Location: ' . $to, true, (int) $_GET['code']);
} else {
    header('Location: ' . $to);
}
echo "moved\n";
