# Check a built installer the way a user meets it: install silently into a scratch folder, find
# the Start-menu entry and the "Installed apps" entry, run the installed app's headless
# self-test, uninstall silently and check that nothing of the program is left but the user data.
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\test-installer.ps1 dist\PrimeStudio-0.1.0-setup.exe
#
# Needs an administrator shell (the installer writes to HKLM and the all-users Start menu).
param(
    [Parameter(Mandatory = $true)][string]$Setup,
    [string]$Screenshot = (Join-Path $env:TEMP "prime-studio-installed.png")
)
$ErrorActionPreference = "Stop"
$dir = Join-Path $env:TEMP "PrimeStudioInstallTest"
$data = Join-Path $env:TEMP "prime-studio-installer-home"
$lnk = Join-Path $env:ProgramData "Microsoft\Windows\Start Menu\Programs\Prime Studio.lnk"
$key = "HKLM:\Software\Microsoft\Windows\CurrentVersion\Uninstall\PrimeStudio"
foreach ($old in @($dir, $data, $Screenshot)) { if (Test-Path $old) { Remove-Item -Recurse -Force $old } }

$p = Start-Process -FilePath $Setup -ArgumentList "/S", "/D=$dir" -Wait -PassThru
if ($p.ExitCode -ne 0) { throw "the installer exited with $($p.ExitCode)" }
$exe = Join-Path $dir "PrimeStudio.exe"
if (-not (Test-Path $exe)) { throw "$exe was not installed" }
if (-not (Test-Path $lnk)) { throw "no Start-menu entry $lnk" }
if (-not (Test-Path $key)) { throw "not listed under Installed apps ($key)" }
$size = (Get-ChildItem -Recurse -File $dir | Measure-Object -Property Length -Sum).Sum
Write-Host ("installed {0:N0} MiB into {1}" -f ($size / 1MB), $dir)

# The app is a windowed program: it reports through its exit status and the screenshot.
$env:QT_QPA_PLATFORM = "offscreen"
$env:PRIME_STUDIO_HOME = $data
$started = Get-Date
$p = Start-Process -FilePath $exe -ArgumentList "--self-test", "generate", "--screenshot", "`"$Screenshot`"" -Wait -PassThru
$seconds = ((Get-Date) - $started).TotalSeconds
if ($p.ExitCode -ne 0) {
    Get-Content (Join-Path $data "logs\studio.log") -ErrorAction SilentlyContinue | Select-Object -Last 40
    throw "the installed app's self-test exited with $($p.ExitCode)"
}
if (-not (Test-Path $Screenshot)) { throw "the self-test wrote no screenshot" }
Write-Host ("installed self-test passed: {0:N1} s from launch to exit" -f $seconds)

$p = Start-Process -FilePath (Join-Path $dir "Uninstall.exe") -ArgumentList "/S" -Wait -PassThru
# The uninstaller copies itself to %TEMP% and returns at once: wait for the copy to finish.
for ($i = 0; $i -lt 180 -and (Test-Path $dir); $i++) { Start-Sleep -Seconds 1 }
if (Test-Path $dir) { throw "the uninstaller left $dir" }
if (Test-Path $lnk) { throw "the uninstaller left $lnk" }
if (Test-Path $key) { throw "the uninstaller left $key" }
if (-not (Test-Path (Join-Path $data "settings.ini"))) { throw "the user's settings are gone" }
Write-Host "uninstalled: no program files, shortcut or registry entry left; user data kept"
